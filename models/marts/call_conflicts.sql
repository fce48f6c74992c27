{{
    config(
        materialized='incremental',
        incremental_strategy=by_load_strategy(),
        unique_key='load_id',
        full_refresh=false,
        indexes=[{'columns': ['load_id']}],
        grants={'select': []},
    )
}}

{#- Rows that were not inserted because a call with their key (timestamp, session_id, prompt_name) is stored,
    although their values differ: the key is the upstream design, so the first row read stays, and both versions
    are kept here for a person to look at. Identical duplicates are not conflicts. Incremental by load: each run
    adds the conflicts of the loads just modelled (delete+insert on load_id, so a repeated run adds nothing).
    Holds raw values, so, like rejected_rows, it is not granted to telemetry_reader. The only copy of a
    conflicting row once its load is done, so never rebuilt from scratch (full_refresh=false). -#}

{%- set columns = call_value_columns() %}

with

{#- Not materialized: the counts below read only load_id, and only the loads that left rows out are read whole
    (a materialized batch would copy every row of a full load first). #}
batch as {{ not_materialized() }} (

    select * from {{ ref('int_usage_rows_typed') }}
    where rejection_reason is null
        and timestamp >= {{ retention_cutoff() }}
    {% if is_incremental() %}
        and load_id in {{ loads_in_status('modelled') }}
        {{ only_loads_not_in_this('load_id') }}
    {% endif %}

),

{#- Only rows that did not become a call can conflict, and only a load that left rows out of llm_calls holds any:
    two counts per load find those loads, so a load whose every row became a call costs no anti-join. -#}
loads_with_rows_left_out as (

    select b.load_id
    from (select load_id, count(*) as batch_rows from batch group by load_id) as b
    left join (
        select load_id, count(*) as calls
        from {{ ref('llm_calls') }}
        where load_id in (select load_id from batch)
        group by load_id
    ) as c on c.load_id = b.load_id
    where coalesce(c.calls, 0) < b.batch_rows

),

{#- The anti-join on (load_id, line) is cheap, and the few rows left find their stored call through llm_calls'
    unique index on the hashed key. -#}
not_inserted as (

    select * from batch as b
    where b.load_id in (select load_id from loads_with_rows_left_out)
        and not exists (
            select 1 from {{ ref('llm_calls') }} as c
            where c.load_id = b.load_id and c.source_line_number = b.line_number
        )

),

stored as (

    select
        c.*,
        c.reported_cost_usd as cost_usd
    from {{ ref('llm_calls') }} as c

)

select
    b.load_id,
    a.source_file,
    b.line_number,
    b.timestamp,
    b.session_id,
    b.prompt_name,
    s.load_id as stored_load_id,
    sa.source_file as stored_source_file,
    s.source_line_number as stored_line_number,
    {%- for column in columns %}
    s.{{ column }} as stored_{{ column }},
    b.{{ column }} as conflicting_{{ column }},
    {%- endfor %}
    b.loaded_at
from not_inserted as b
join stored as s
    on s.timestamp = b.timestamp
    and md5(s.session_id) = md5(b.session_id)
    and md5(s.prompt_name) = md5(b.prompt_name)
    and s.session_id = b.session_id
    and s.prompt_name = b.prompt_name
left join {{ source('telemetry_raw', 'load_audit') }} as a on a.load_id = b.load_id
left join {{ source('telemetry_raw', 'load_audit') }} as sa on sa.load_id = s.load_id
where (
        {%- for column in columns %}
        s.{{ column }} is distinct from b.{{ column }}{{ ' or' if not loop.last }}
        {%- endfor %}
    )
