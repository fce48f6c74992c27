{{
    config(
        materialized=derived_materialization(),
        incremental_strategy='delete+insert',
        unique_key=['timestamp', 'session_id', 'prompt_name'],
        indexes=[{'columns': ['error_pattern', '"timestamp"']}, {'columns': ['"timestamp"']}],
        post_hook=[
            "{{ delete_before_cutoff('timestamp') }}",
        ],
    )
}}

{#- One row per failed call with its error pattern, normalised exactly as error_summary does, so that a pattern
    leads to the calls behind it, and errors can be counted by phase and prompt_name. Incremental: each run adds
    the failed calls of the loads just modelled (a call never changes once stored; repricing rebuilds everything),
    and the post-hook drops what retention pruned. -#}

select
    timestamp,
    session_id,
    prompt_name,
    model,
    coalesce(phase, '(none)') as phase,
    {{ utc_date('timestamp') }} as call_date,
    coalesce(nullif({{ normalise_error('error_message') }}, ''), '(no message)') as error_pattern,
    error_message,
    estimated_cost_usd,
    load_id,
    source_line_number
from {{ ref('llm_calls') }}
where success = false
{% if is_incremental() %}
    and load_id in {{ loads_in_status('modelled') }}
{% endif %}
