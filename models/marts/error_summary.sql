-- depends_on: {{ ref('llm_calls') }}
{{
    config(
        materialized=derived_materialization(),
        incremental_strategy='delete+insert',
        unique_key='call_date',
        indexes=[{'columns': ['call_date']}],
        post_hook=["{{ before_cutoff_day() }}"],
    )
}}

{#- Failed calls per error pattern, model and UTC day, from failed_calls (which normalises each error once).
    Incremental by day, like daily_usage: a load recomputes the days it brought calls to, not every failure. -#}

with

failures as (

    select * from {{ ref('failed_calls') }}
    {% if is_incremental() %}
    where call_date in {{ changed_days() }}
    {% endif %}

)

select
    error_pattern,
    model,
    call_date,
    count(*) as failures,
    min(timestamp) as first_seen,
    max(timestamp) as last_seen,
    {{ latest_of('error_message', 'timestamp') }} as example_error_message
from failures
group by error_pattern, model, call_date
