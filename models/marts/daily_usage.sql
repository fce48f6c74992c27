-- depends_on: {{ ref('llm_calls') }}
{# Hash indexes for the filters: equality is all they need, and a hash index takes values of any length (a btree
   index refuses a row over 2.7 kB, and a model name may be longer). #}
{{
    config(
        materialized=derived_materialization(),
        incremental_strategy='delete+insert',
        unique_key='call_date',
        indexes=[{'columns': ['call_date']}, {'columns': ['model'], 'type': 'hash'},
                 {'columns': ['phase'], 'type': 'hash'}, {'columns': ['prompt_name'], 'type': 'hash'}],
        pre_hook=["{{ null_unpriced_costs() }}"],
        post_hook=["{{ before_cutoff_day() }}"],
    )
}}

{#- The grain every analytics mart rolls up from: one row per UTC day, model, phase and prompt_name, with every
    measure. Calls without a phase are grouped under '(none)', as prompt_name already is.
    Incremental by day, so that a load costs what it brings, not what is stored: each run recomputes the days of
    the loads just modelled and the retention cutoff's day (changed_days()); the days before the cutoff are
    deleted (before_cutoff_day(), and the loader's pruning). -#}

with

calls as (

    {% if is_incremental() %}
    {#- Each day's calls by a range of timestamp, looked up in llm_calls' key index (the fence keeps the planner
        from turning the lookup into a scan of every call). -#}
    select c.*
    from {{ changed_days() }} as d
    cross join lateral (
        select * from {{ ref('llm_calls') }} as c
        where c.timestamp >= d.call_date::timestamp at time zone 'UTC'
            and c.timestamp < (d.call_date + 1)::timestamp at time zone 'UTC'
        offset 0
    ) as c
    {% else %}
    select * from {{ ref('llm_calls') }}
    {% endif %}

),

aggregated as (

    select
        {{ utc_date('timestamp') }} as call_date,
        model,
        coalesce(phase, '(none)') as phase,
        prompt_name,
        {{ call_measures() }},
        coalesce(sum(estimated_cost_usd) filter (where success), 0) as successful_calls_cost_usd

    from calls
    group by 1, 2, 3, 4

)

select * from aggregated
