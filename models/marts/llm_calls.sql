{{
    config(
        materialized='incremental',
        incremental_strategy=calls_strategy(),
        unique_key=['timestamp', 'session_id', 'prompt_name'],
        full_refresh=false,
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['"timestamp"', 'md5(session_id)', 'md5(prompt_name)'], 'unique': true},
            {'columns': ['load_id']},
        ],
        pre_hook=["{{ add_session_id_derived() }}"],
        post_hook=[
            "{{ mark_loads_modelled() }}",
        ],
    )
}}

{#- The unique index hashes the text parts of the key: a CSV may hold values longer than a btree index row
    allows (2.7 kB). -#}

{#- New calls only: the priced, deduplicated batch (int_llm_calls__priced) minus keys already stored. The
    post-hook marks the batch's loads modelled in the same transaction as the new calls. The one durable copy
    of a call, with its lineage (load_id, source_line_number; the file is loads.source_file): the landing and
    typed rows are emptied once their load is done, so it is never rebuilt from scratch (full_refresh=false);
    `telemetry prices reprice` reprices it in place (reprice_calls()). -#}

with

new_calls as (

    select * from {{ ref('int_llm_calls__priced') }} as c
    {% if is_incremental() %}
    where not exists (
        select 1 from {{ this }} as t
        where t.timestamp = c.timestamp
            and t.session_id = c.session_id
            and t.prompt_name = c.prompt_name
    )
    {% endif %}

)

select
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
    session_id,
    session_id_derived,
    notes,
    estimated_cost_usd,
    cost_source,
    cost_usd as reported_cost_usd,
    price_provider_id,
    price_model_id,
    load_id,
    loaded_at,
    line_number as source_line_number
from new_calls
