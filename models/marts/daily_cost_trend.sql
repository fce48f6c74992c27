{{ config(materialized='view') }}

with

daily as (

    select
        call_date,
        {{ summed_measures(['calls', 'input_tokens', 'output_tokens', 'total_tokens', 'estimated_cost_usd',
                            'unpriced_calls']) }}
    from {{ ref('daily_usage') }}
    group by call_date

),

calendar as (

    {#- Every day from the first call to the last, so that quiet days show as zeros, not gaps (a day whose calls
        are all unpriced keeps its NULL cost: unknown, not zero). -#}
    select {{ calendar_days('first_day', 'last_day') }} as call_date
    from (select min(call_date) as first_day, max(call_date) as last_day from daily) as bounds

),

filled as (

    select
        c.call_date,
        coalesce(d.calls, 0) as calls,
        coalesce(d.input_tokens, 0) as input_tokens,
        coalesce(d.output_tokens, 0) as output_tokens,
        coalesce(d.total_tokens, 0) as total_tokens,
        case when d.call_date is null then 0 else d.estimated_cost_usd end as estimated_cost_usd,
        coalesce(d.unpriced_calls, 0) as unpriced_calls
    from calendar as c
    left join daily as d on d.call_date = c.call_date

)

select
    call_date,
    calls,
    input_tokens,
    output_tokens,
    total_tokens,
    estimated_cost_usd,
    unpriced_calls,
    {#- Unknown (NULL) while every call so far, or in the window, is unpriced; a window of quiet days costs 0. -#}
    case when sum(calls - unpriced_calls) over to_date > 0 then sum(estimated_cost_usd) over to_date end
        as cumulative_cost_usd,
    case when sum(calls - unpriced_calls) over last_7_days > 0 or sum(calls) over last_7_days = 0
        then round(avg(estimated_cost_usd) over last_7_days, 6) end as cost_7d_moving_avg_usd
from filled
window
    to_date as (order by call_date),
    last_7_days as (order by call_date rows between 6 preceding and current row)
