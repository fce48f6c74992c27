with

failures as (

    select
        {{ normalise_error('error_message') }} as error_pattern,
        error_message,
        model,
        ("timestamp" at time zone 'UTC')::date as call_date,
        "timestamp"
    from {{ ref('llm_calls') }}
    where success = false

)

select
    coalesce(nullif(error_pattern, ''), '(no message)') as error_pattern,
    model,
    call_date,
    count(*) as failures,
    min("timestamp") as first_seen,
    max("timestamp") as last_seen,
    (array_agg(error_message order by "timestamp" desc))[1] as example_error_message
from failures
group by 1, model, call_date
