{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='call_date',
        indexes=[{'columns': ['call_date']}],
        post_hook=[
            "delete from {{ this }} as d
             where d.call_date <= ({{ retention_cutoff() }} at time zone 'UTC')::date
               and not exists (
                   select 1 from {{ ref('llm_calls') }} as c
                   where c.\"timestamp\" >= d.call_date::timestamp at time zone 'UTC'
                     and c.\"timestamp\" < (d.call_date + 1)::timestamp at time zone 'UTC')",
        ],
    )
}}

{#- The shared grain of the marts: one row per UTC day, model, phase and prompt_name, with every measure.
    Calls without a phase are grouped under '(none)', as prompt_name already is.
    Incremental by day, so that a load costs what it brings, not what is stored: each run recomputes the days
    of the loads just modelled, and the day of the retention cutoff; days that retention emptied are removed
    by the post-hook. -#}

with

{% if is_incremental() %}
changed_days as (

    select distinct ("timestamp" at time zone 'UTC')::date as call_date
    from {{ ref('llm_calls') }}
    where load_id in {{ loads_in_status('modelled') }}
    union
    select ({{ retention_cutoff() }} at time zone 'UTC')::date

),
{% endif %}

calls as (

    {% if is_incremental() %}
    {#- Each day's calls by a range of "timestamp", looked up in llm_calls' key index (the fence keeps the planner
        from turning the lookup into a scan of every call). -#}
    select c.*
    from changed_days as d
    cross join lateral (
        select * from {{ ref('llm_calls') }} as c
        where c."timestamp" >= d.call_date::timestamp at time zone 'UTC'
            and c."timestamp" < (d.call_date + 1)::timestamp at time zone 'UTC'
        offset 0
    ) as c
    {% else %}
    select * from {{ ref('llm_calls') }}
    {% endif %}

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
