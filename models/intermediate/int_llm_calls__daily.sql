{{ config(materialized="table") }}

{#- The shared grain of the marts: one row per UTC day, model, phase and prompt_name, with every measure.
    Calls without a phase are grouped under '(none)', as prompt_name already is. -#}

with

calls as (

    select * from {{ ref('llm_calls') }}

),

aggregated as (

    select
        ("timestamp" at time zone 'UTC')::date as call_date,
        model,
        coalesce(phase, '(none)') as phase,
        prompt_name,
        count(*) as calls,
        count(*) filter (where success) as successes,
        count(*) filter (where not success) as failures,
        coalesce(sum(input_tokens), 0) as input_tokens,
        coalesce(sum(output_tokens), 0) as output_tokens,
        coalesce(sum(total_tokens), 0) as total_tokens,
        coalesce(sum(estimated_cost_usd), 0) as estimated_cost_usd,
        coalesce(sum(estimated_cost_usd) filter (where success), 0) as successful_calls_cost_usd,
        count(*) filter (where estimated_cost_usd is null) as unpriced_calls

    from calls
    group by 1, 2, 3, 4

)

select * from aggregated
