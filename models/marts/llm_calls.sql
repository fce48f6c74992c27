{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key=['timestamp', 'session_id', 'prompt_name'],
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['"timestamp"', 'md5(session_id)', 'md5(prompt_name)'], 'unique': true},
            {'columns': ['load_id']},
        ],
        post_hook=[
            "update {{ source('telemetry_raw', 'load_audit') }} set status = 'modelled' where status = 'loaded'",
        ],
    )
}}

{#- The unique index hashes the text parts of the key: a CSV may hold values longer than a btree index row
    allows (2.7 kB). -#}

{#- New calls only: valid rows of the loads not yet modelled, deduplicated inside the batch (first read wins),
    minus keys already stored. Key columns are never NULL (see stg_telemetry__usage_rows). -#}

with

batch as (

    select * from {{ ref('int_usage_rows_typed') }}
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

),

price_rules as {{ price_rules_for_models('new_calls') }},

priced as (

    select
        c.*,
        p.provider_id as price_provider_id,
        p.model_id as price_model_id,
        case when p.model_id is not null then
            (
                greatest(
                    coalesce(c.input_tokens, 0)
                    - case when p.cache_read_mtok is not null then coalesce(c.cache_read_tokens, 0) else 0 end
                    - case when p.cache_write_mtok is not null then coalesce(c.cache_write_tokens, 0) else 0 end,
                    0
                ) * {{ token_price('input') }}
                + coalesce(c.output_tokens, 0) * {{ token_price('output') }}
                + coalesce(c.cache_read_tokens, 0) * {{ token_price('cache_read') }}
                + coalesce(c.cache_write_tokens, 0) * {{ token_price('cache_write') }}
            ) * 0.000001
        end as computed_cost_usd
    from new_calls as c
    left join price_rules as r on r.model = c.model
    left join {{ ref('model_prices') }} as p
        on p.provider_id = r.provider_id
        and p.match_order = r.match_order
        and (p.valid_from is null or c."timestamp" >= p.valid_from)
        and (p.valid_to is null or c."timestamp" < p.valid_to)
        and (p.daily_from is null or (
            (c."timestamp" at time zone 'UTC')::time >= p.daily_from
            and (c."timestamp" at time zone 'UTC')::time < p.daily_to
        ))

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
    coalesce(cost_usd, computed_cost_usd) as estimated_cost_usd,
    case when cost_usd is not null then 'reported' when computed_cost_usd is not null then 'estimated' end
        as cost_source,
    cost_usd as reported_cost_usd,
    price_provider_id,
    price_model_id,
    load_id,
    loaded_at,
    line_number as source_line_number
from priced
