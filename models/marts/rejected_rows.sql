{{ config(materialized='view', grants={'select': []}) }}

-- Rows the loader read but could not type: where they came from, what they held, and why.
select
    r.load_id,
    a.source_file,
    r.line_number,
    r.record_number,
    r.rejection_reason,
    r.raw_timestamp,
    r.raw_model,
    r.raw_prompt_tokens,
    r.raw_completion_tokens,
    r.raw_task_success,
    r.raw_task_type,
    r.raw_duration_ms,
    r.raw_notes,
    r.loaded_at
from {{ ref('stg_telemetry__usage_rows') }} as r
left join {{ source('telemetry_raw', 'load_audit') }} as a on a.load_id = r.load_id
where r.rejection_reason is not null
