{{
    config(
        materialized=derived_materialization(),
        incremental_strategy='delete+insert',
        unique_key='session_id',
        indexes=[{'columns': ['session_id'], 'type': 'hash'}, {'columns': ['first_call_at']}],
        pre_hook=["{{ null_unpriced_costs() }}"],
        post_hook=[
            "{{ delete_before_cutoff('first_call_at') }}",
            "{{ cost_order_index() }}",
        ],
    )
}}

{#- One row per session, the whole session whatever its models, phases and days. Sessions are the CSV's session_id:
    a call without one (session_id_derived: its session_id is a hash of its values) is in no session, as a
    session of one call tells nothing its call does not. Incremental by session, so that a
    load costs what it brings: each run recomputes the sessions of the loads just modelled, and the sessions that
    began before the retention cutoff (pruning may have removed some of their calls); sessions left without a
    call are removed by the post-hook. -#}

with

{% if is_incremental() %}
new_calls as (

    select session_id, min(timestamp) as since
    from {{ ref('llm_calls') }}
    where load_id in {{ loads_in_status('modelled') }}
        and session_id_derived is not true
    group by session_id

),

touched as (

    {#- The sessions the new calls belong to, from the earliest of their stored first call and their new calls:
        no call of theirs is older. #}
    select n.session_id, least(n.since, t.first_call_at) as since
    from new_calls as n
    left join {{ this }} as t on t.session_id = n.session_id

),

expiring as (

    {#- Sessions that began before the retention cutoff: what is left of them lies between the cutoff and their
        last call. #}
    select session_id, last_call_at
    from {{ this }}
    where first_call_at < {{ retention_cutoff() }}
        and session_id not in (select session_id from touched)

),
{% endif %}

calls as (

    {#- Read from llm_calls by time ranges (its key index leads with timestamp), so that a run costs what the
        load brings and what ages out, not what is stored. #}
    {% if is_incremental() %}
    select * from {{ ref('llm_calls') }}
    where session_id in (select session_id from touched)
        and timestamp >= (select min(since) from touched)
    union all
    select * from {{ ref('llm_calls') }}
    where session_id in (select session_id from expiring)
        and timestamp >= {{ retention_cutoff() }}
        and timestamp <= (select max(last_call_at) from expiring)
    {% else %}
    select * from {{ ref('llm_calls') }}
    where session_id_derived is not true
    {% endif %}

)

select
    {#- Grouped under the "C" collation: a million distinct session ids sort by bytes much faster than by
        language rules, and equality is the same. #}
    {{ bytewise('session_id') }} as session_id,
    min(timestamp) as first_call_at,
    max(timestamp) as last_call_at,
    {{ call_measures() }},
    {{ sorted_distinct('model') }} as models,
    {{ sorted_distinct("coalesce(phase, '(none)')") }} as phases,
    {{ sorted_distinct('prompt_name') }} as prompt_names
from calls
group by 1
