-- depends_on: {{ ref('llm_calls') }}
{{
    config(
        materialized='incremental',
        incremental_strategy=by_load_strategy(),
        unique_key='load_id',
        full_refresh=false,
        indexes=[{'columns': ['load_id']}],
        grants={'select': []},
    )
}}

{#- Rows the loader read but could not type: where they came from, what they held, and why. The only copy of a
    rejected row's text once its load is done (the landing rows are then emptied), so it is never rebuilt from
    scratch (full_refresh=false). Incremental by load: each run adds the rejects of the loads just modelled
    (delete+insert on load_id, so a repeated run adds nothing); the depends_on line runs it after llm_calls,
    whose post-hook marks those loads modelled. The first build (on a database an earlier version built, where
    this was a view) takes every landed reject. timestamp is the row's time when it parsed, by which retention
    ages rejects out (or loaded_at when it did not). Holds raw values, so it is not granted to telemetry_reader. -#}

select
    t.load_id,
    a.source_file,
    t.line_number,
    t.record_number,
    t.rejection_reason,
    t.timestamp,
    r.timestamp as raw_timestamp,
    r.model as raw_model,
    r.prompt_tokens as raw_prompt_tokens,
    r.completion_tokens as raw_completion_tokens,
    r.task_success as raw_task_success,
    r.task_type as raw_task_type,
    r.duration_ms as raw_duration_ms,
    r.notes as raw_notes,
    r.session_id as raw_session_id,
    r.error_message as raw_error_message,
    r.cost_usd as raw_cost_usd,
    r.cache_read_tokens as raw_cache_read_tokens,
    r.cache_write_tokens as raw_cache_write_tokens,
    t.loaded_at
from {{ ref('int_usage_rows_typed') }} as t
join {{ source('telemetry_raw', 'usage_rows') }} as r
    on r.load_id = t.load_id and r.record_number = t.record_number
left join {{ source('telemetry_raw', 'load_audit') }} as a on a.load_id = t.load_id
where t.rejection_reason is not null
{% if is_incremental() %}
    and t.load_id in {{ loads_in_status('modelled') }}
    {{ only_loads_not_in_this('t.load_id') }}
{% endif %}
