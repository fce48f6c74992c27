{{ config(materialized='view') }}

select
    call_date,
    model,
    {{ summed_measures(['calls', 'input_tokens', 'output_tokens', 'total_tokens', 'estimated_cost_usd',
                        'unpriced_calls']) }}
from {{ ref('daily_usage') }}
group by call_date, model
