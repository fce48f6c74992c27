{{ config(materialized='ephemeral') }}

{#- The calls of the loads not yet modelled (of every load when var('all_loads'): a rebuild of llm_calls), deduplicated inside the batch and priced: the part of llm_calls
    that does not depend on what is already stored. Ephemeral, so llm_calls pays nothing for the layer.
    Valid rows newer than the retention cutoff only; in-batch duplicates keep the first row read (load_id,
    record_number), so the merge never sees one key twice. Key columns are never NULL (stg_telemetry__usage_rows).
    Prices: the seed rule chosen as genai-prices chooses (macros/pricing.sql), the period in effect at the call's
    timestamp, long-context tiers and off-peak windows. -#}

with

batch as (

    select * from {{ ref('int_usage_rows_typed') }}
    where rejection_reason is null
        and "timestamp" >= {{ retention_cutoff() }}
    {%- if not var('all_loads', false) %}
        and load_id in {{ loads_in_status('loaded') }}
    {%- endif %}

),

deduplicated as (

    select distinct on ("timestamp", session_id, prompt_name) *
    from batch
    order by "timestamp", session_id, prompt_name, load_id, record_number

),

price_rules as {{ price_rules_for_models('deduplicated') }},

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
    from deduplicated as c
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

),

final as (

    select
        *,
        coalesce(cost_usd, computed_cost_usd) as estimated_cost_usd,
        case when cost_usd is not null then 'reported' when computed_cost_usd is not null then 'estimated' end
            as cost_source
    from priced

)

select * from final
