{{ config(materialized='view', grants={'select': []}) }}

-- Rows the loader read but could not type: where they came from, what they held, and why.
select
    t.load_id,
    a.source_file,
    t.line_number,
    t.record_number,
    t.rejection_reason,
    r."timestamp" as raw_timestamp,
    r.model as raw_model,
    r.prompt_tokens as raw_prompt_tokens,
    r.completion_tokens as raw_completion_tokens,
    r.task_success as raw_task_success,
    r.task_type as raw_task_type,
    r.duration_ms as raw_duration_ms,
    r.notes as raw_notes,
    t.loaded_at
from {{ ref('int_usage_rows_typed') }} as t
join {{ source('telemetry_raw', 'usage_rows') }} as r
    on r.load_id = t.load_id and r.record_number = t.record_number
left join {{ source('telemetry_raw', 'load_audit') }} as a on a.load_id = t.load_id
where t.rejection_reason is not null
