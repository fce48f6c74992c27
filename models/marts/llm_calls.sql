{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key=['timestamp', 'session_id', 'prompt_name'],
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['timestamp', 'session_id', 'prompt_name'], 'unique': true},
            {'columns': ['load_id']},
        ],
        post_hook=[
            "update {{ source('telemetry_raw', 'load_audit') }} set status = 'modelled' where status = 'loaded'",
        ],
    )
}}

{#- New calls only: valid rows of the loads not yet modelled, deduplicated inside the batch (first read wins),
    minus keys already stored. Key columns are never NULL (see stg_telemetry__usage_rows). -#}

with

batch as (

    select * from {{ ref('stg_telemetry__usage_rows') }}
    where rejection_reason is null
        and "timestamp" >= {{ retention_cutoff() }}
    {% if is_incremental() %}
        and load_id in (
            select load_id from {{ source('telemetry_raw', 'load_audit') }} where status = 'loaded'
        )
    {% endif %}

),

deduplicated as (

    select distinct on ("timestamp", session_id, prompt_name) *
    from batch
    order by "timestamp", session_id, prompt_name, load_id, record_number

),

new_calls as (

    select * from deduplicated as d
    {% if is_incremental() %}
    where not exists (
        select 1 from {{ this }} as t
        where t."timestamp" = d."timestamp"
            and t.session_id = d.session_id
            and t.prompt_name = d.prompt_name
    )
    {% endif %}

)

select
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
    session_id,
    notes,
    cost_usd as reported_cost_usd,
    load_id,
    loaded_at,
    line_number as source_line_number
from new_calls
