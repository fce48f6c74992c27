{% macro call_measures() -%}
    {#- The measures of a group of llm_calls rows, as daily_usage and cost_by_session both hold them. The cost is
        that of the priced calls: NULL (unknown, not free) when every call of the group is unpriced. -#}
    count(*) as calls,
    count(*) filter (where success) as successes,
    count(*) filter (where not success) as failures,
    coalesce(sum(input_tokens), 0) as input_tokens,
    coalesce(sum(output_tokens), 0) as output_tokens,
    coalesce(sum(total_tokens), 0) as total_tokens,
    sum(estimated_cost_usd) as estimated_cost_usd,
    count(*) filter (where estimated_cost_usd is null) as unpriced_calls
{%- endmacro %}

{% macro summed_measures(columns) -%}
    {#- `sum(x) as x` for each measure column: the marts roll daily_usage up to their own grain. -#}
    {%- for column in columns %}
    sum({{ column }}) as {{ column }}{{ "," if not loop.last }}
    {%- endfor %}
{%- endmacro %}
