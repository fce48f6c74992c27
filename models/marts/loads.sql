{{ config(materialized='view') }}

-- depends_on: {{ ref('llm_calls') }}
{#- The lineage of a call for readers without access to telemetry_raw: llm_calls.load_id names the load, this
    view names its file. A view, so that it is always current; the depends_on line makes the pipeline (which
    builds what is downstream of the typed rows) create it. #}

select
    load_id,
    source_file,
    sha256,
    bytes,
    line_offset,
    rows_read,
    inserted,
    duplicates,
    rejected,
    expired,
    started_at,
    finished_at,
    status
from {{ source('telemetry_raw', 'load_audit') }}
