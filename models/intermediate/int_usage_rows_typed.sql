{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['load_id', 'record_number'], 'unique': true}],
        post_hook=["{{ add_index_on_load_and_time() }}"],
    )
}}

{#- The landing rows typed once: the staging view's parsing and checks are the costly part of a load, so each
    new load's rows are typed here a single time, and llm_calls, rejected_rows, the loader's counts and
    retention all read this table. Loads arrive in load_id order; a load is typed exactly once. -#}

select
    load_id,
    record_number,
    line_number,
    loaded_at,
    rejection_reason,
    "timestamp",
    phase,
    prompt_name,
    model,
    input_tokens,
    output_tokens,
    total_tokens,
    cache_read_tokens,
    cache_write_tokens,
    success,
    error_message,
    duration_ms,
    cost_usd,
    session_id,
    session_id_derived,
    notes
from {{ ref('stg_telemetry__usage_rows') }}
{% if is_incremental() %}
where load_id in {{ loads_in_status('loaded') }}
    and load_id > (select coalesce(max(load_id), 0) from {{ this }})
{% endif %}
