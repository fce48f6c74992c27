{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        unlogged=True,
        post_hook=["{{ typed_rows_index() }}"],
    )
}}

{#- The rows of the loads in flight, typed once: the staging view's parsing and checks are the costly part of a
    load, so each new load's rows are typed here a single time, and llm_calls, rejected_rows, call_conflicts and
    the loader's counts read this table. A work table, not a copy: unlogged (no WAL), and emptied with the
    landing table once every load is done (loader/landing.py, release_landed_rows), so a call is written durably
    once, in llm_calls. Loads arrive in load_id order; a load is typed exactly once. -#}

select
    load_id,
    record_number,
    line_number,
    loaded_at,
    rejection_reason,
    timestamp,
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
