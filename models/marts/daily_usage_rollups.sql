-- depends_on: {{ ref('llm_calls') }}
{{
    config(
        materialized=derived_materialization(),
        incremental_strategy='delete+insert',
        unique_key='call_date',
        indexes=[{'columns': ['grain', 'call_date']}],
        pre_hook=["{{ null_unpriced_costs() }}"],
        post_hook=["{{ before_cutoff_day() }}"],
    )
}}

{#- daily_usage rolled up to one dimension at a time: per UTC day and model, per day and phase, per day and
    prompt_name (the grain column says which; the other two are NULL). Small enough that a dashboard page or
    `telemetry stats` filtered on at most that one dimension reads a few thousand rows, whether the other marts
    are tables or views. Incremental by day, like daily_usage. -#}

with

daily as (

    select * from {{ ref('daily_usage') }}
    {% if is_incremental() %}
    where call_date in {{ changed_days() }}
    {% endif %}

)

select
    case when grouping(model) = 0 then 'model' when grouping(phase) = 0 then 'phase' else 'prompt_name' end
        as grain,
    call_date,
    model,
    phase,
    prompt_name,
    {{ summed_measures(['calls', 'successes', 'failures', 'input_tokens', 'output_tokens', 'total_tokens',
                        'estimated_cost_usd', 'successful_calls_cost_usd', 'unpriced_calls']) }}
from daily
group by grouping sets ((call_date, model), (call_date, phase), (call_date, prompt_name))
