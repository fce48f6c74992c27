{% macro summed_measures(columns) -%}
    {#- `sum(x) as x` for each measure column: the marts roll int_llm_calls__daily up to their own grain. -#}
    {%- for column in columns %}
    sum({{ column }}) as {{ column }}{{ "," if not loop.last }}
    {%- endfor %}
{%- endmacro %}
