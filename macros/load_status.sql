{#- The loader-dbt contract on the dbt side: the statuses of a load (telemetry_raw.load_audit.status). The
    loader names the same statuses in loader/contract.py (LoadStatus, with the state machine drawn); a test
    fails when the two lists differ. -#}

{% macro load_status(name) -%}
    {%- set statuses = ['loaded', 'modelled', 'done', 'aborted'] -%}
    {%- if name not in statuses -%}
        {{ exceptions.raise_compiler_error("unknown load status '" ~ name ~ "'; one of " ~ statuses | join(', ')) }}
    {%- endif -%}
    '{{ name }}'
{%- endmacro %}

{% macro loads_in_status(name) -%}
    {#- The load ids whose status is `name`, as a subquery for `load_id in (...)`. -#}
    (select load_id from {{ source('telemetry_raw', 'load_audit') }} where status = {{ load_status(name) }})
{%- endmacro %}
