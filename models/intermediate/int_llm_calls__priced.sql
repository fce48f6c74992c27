{{ config(materialized='ephemeral') }}

{#- The calls of the loads not yet modelled (of every load still landed when var('all_loads')), deduplicated
    inside the batch and priced: the part of llm_calls that does not depend on what is already stored. Ephemeral, so llm_calls pays nothing for the layer.
    Valid rows newer than the retention cutoff only; in-batch duplicates keep the first row read (load_id,
    record_number), so the merge never sees one key twice. Key columns are never NULL (stg_telemetry__usage_rows).
    Prices: priced_calls() (macros/pricing.sql). -#}

with

batch as (

    select * from {{ ref('int_usage_rows_typed') }}
    where rejection_reason is null
        and timestamp >= {{ retention_cutoff() }}
    {%- if not var('all_loads', false) %}
        and load_id in {{ loads_in_status('loaded') }}
    {%- endif %}

),

deduplicated as (

    {{ first_per_key('batch', ['timestamp', 'session_id', 'prompt_name'], ['load_id', 'record_number']) }}

),

priced as (

    {{ priced_calls('deduplicated') }}

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
