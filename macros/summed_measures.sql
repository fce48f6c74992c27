{% macro summed_measures(columns) -%}
    {#- `sum(x) as x` for each measure column: the marts roll daily_usage up to their own grain. -#}
    {%- for column in columns %}
    sum({{ column }}) as {{ column }}{{ "," if not loop.last }}
    {%- endfor %}
{%- endmacro %}
