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
    {{ adapter.dispatch('loads_in_status', 'llm_telemetry')(name) }}
{%- endmacro %}
{% macro default__loads_in_status(name) -%}
    (select load_id from {{ source('telemetry_raw', 'load_audit') }} where status = {{ load_status(name) }})
{%- endmacro %}
{#- On Spark the load audit is written by the loader alone (parquet has no UPDATE, so llm_calls' post-hook cannot
    mark loads modelled, mark_loads_modelled()): a load in flight, 'loaded' or 'modelled', is in the batch of
    every model, which on Spark is built in one dbt run per load. #}
{% macro spark__loads_in_status(name) -%}
    {%- if name in ('loaded', 'modelled') -%}
    (select load_id from {{ source('telemetry_raw', 'load_audit') }}
     where status in ({{ load_status('loaded') }}, {{ load_status('modelled') }}))
    {%- else -%}
    {{ default__loads_in_status(name) }}
    {%- endif -%}
{%- endmacro %}

{% macro mark_loads_modelled() -%}
    {#- llm_calls' post-hook: the batch's loads are modelled, in the transaction of their new calls. -#}
    {{ adapter.dispatch('mark_loads_modelled', 'llm_telemetry')() }}
{%- endmacro %}
{% macro default__mark_loads_modelled() -%}
    update {{ source('telemetry_raw', 'load_audit') }} set status = {{ load_status('modelled') }}
    where status = {{ load_status('loaded') }}
{%- endmacro %}
{% macro spark__mark_loads_modelled() -%} {%- endmacro %}
