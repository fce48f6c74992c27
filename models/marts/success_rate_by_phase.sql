{{ config(materialized='view') }}

with

by_phase as (

    select
        phase,
        call_date,
        {{ summed_measures(['calls', 'successes', 'failures', 'estimated_cost_usd',
                            'successful_calls_cost_usd']) }}
    from {{ ref('daily_usage') }}
    group by phase, call_date

)

select
    phase,
    call_date,
    calls,
    successes,
    failures,
    calls - successes - failures as unknown_outcome_calls,
    case when successes + failures > 0 then round(cast(successes as {{ amount_type() }}) / (successes + failures), 6) end
        as success_rate,
    estimated_cost_usd,
    case when successes > 0 then estimated_cost_usd / successes end as cost_per_successful_call_usd
from by_phase
