{% macro retention_cutoff() -%}
    {#- Calls before this instant are expired. The loader passes var('retention_cutoff') so that its counts
        and dbt use the very same instant; run by hand, dbt uses now() minus var('retention_months'). -#}
    {%- if var('retention_cutoff', none) -%}
        {{ timestamp_literal(var("retention_cutoff")) }}
    {%- else -%}
        {{ months_ago(var("retention_months", 6)) }}
    {%- endif -%}
{%- endmacro %}
