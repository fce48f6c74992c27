-- depends_on: {{ ref('llm_calls') }}
{# Hash indexes: equality is all the filters need, and a hash index takes values of any length (a btree index
   refuses a row over 2.7 kB, and a model name may be longer). #}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='call_date',
        indexes=[{'columns': ['model'], 'type': 'hash'}, {'columns': ['phase'], 'type': 'hash'},
                 {'columns': ['prompt_name'], 'type': 'hash'}],
        post_hook=[
            "delete from {{ this }} where call_date < ({{ retention_cutoff() }} at time zone 'UTC')::date",
        ],
    )
}}

{#- The grain every analytics mart rolls up from (UTC day, model, phase, prompt_name), for readers that filter on
    phase and prompt_name at once, as the dashboard does: a copy of int_llm_calls__daily that readers may see,
    indexed for those filters. Incremental by day as its source is: each run copies the days of the loads just
    modelled and the retention cutoff's day; the post-hook drops the days before the cutoff. -#}

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

daily as (

    select * from {{ ref('int_llm_calls__daily') }}
    {% if is_incremental() %}
    where call_date in (select call_date from changed_days)
    {% endif %}

)

select
    call_date,
    model,
    phase,
    prompt_name,
    calls,
    successes,
    failures,
    input_tokens,
    output_tokens,
    total_tokens,
    estimated_cost_usd,
    successful_calls_cost_usd,
    unpriced_calls
from daily
