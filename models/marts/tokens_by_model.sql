select
    call_date,
    model,
    sum(calls) as calls,
    sum(input_tokens) as input_tokens,
    sum(output_tokens) as output_tokens,
    sum(total_tokens) as total_tokens,
    sum(estimated_cost_usd) as estimated_cost_usd,
    sum(unpriced_calls) as unpriced_calls
from {{ ref('int_llm_calls__daily') }}
group by call_date, model
