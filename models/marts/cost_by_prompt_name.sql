{{ config(materialized='view') }}

select
    prompt_name,
    call_date,
    model,
    {{ summed_measures(['calls', 'input_tokens', 'output_tokens', 'total_tokens', 'estimated_cost_usd',
                        'unpriced_calls', 'successes', 'failures']) }}
from {{ ref('daily_usage') }}
group by prompt_name, call_date, model
