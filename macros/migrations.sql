{#- One-time changes to tables an earlier version built, run as pre-hooks of the model that owns the table, so
    that an upgraded database is migrated in place on the first run and a new one pays nothing. Each is a DO
    block that checks whether its change is still to be made. PostgreSQL only (postgres__), as are the indexes:
    the releases that built such tables ran on PostgreSQL, and Spark's parquet tables have no indexes. -#}

{% macro add_session_id_derived() -%}
    {{ adapter.dispatch('add_session_id_derived', 'llm_telemetry')() }}
{%- endmacro %}
{% macro default__add_session_id_derived() -%} {%- endmacro %}
{% macro postgres__add_session_id_derived() -%}
    {#- llm_calls.session_id_derived (new in 0.2.0): whether session_id was derived from the call's values because
        the CSV gave none. For the calls 0.1.0 stored, it is read from their landing row (load_id and line
        number), by 0.1.0's rule: a session_id empty after trimming spaces. -#}
    {%- set relation = this.schema ~ '.' ~ this.identifier -%}
    do $migration$
    begin
        if to_regclass('{{ relation }}') is not null and not exists (
            select 1 from pg_attribute
            where attrelid = to_regclass('{{ relation }}') and attname = 'session_id_derived' and not attisdropped
        ) then
            alter table {{ relation }} add column session_id_derived boolean;
            update {{ relation }} as c
            set session_id_derived = nullif(trim(u.session_id), '') is null
            from {{ source('telemetry_raw', 'usage_rows') }} as u
            where u.load_id = c.load_id and u.line_number = c.source_line_number;
        end if;
    end
    $migration$
{%- endmacro %}

{% macro typed_rows_index() -%}
    {{ adapter.dispatch('typed_rows_index', 'llm_telemetry')() }}
{%- endmacro %}
{% macro default__typed_rows_index() -%} {%- endmacro %}
{% macro postgres__typed_rows_index() -%}
    {#- The typed rows' one index: BRIN on load_id (rows arrive in load order, so it finds a load's rows at almost
        no cost to the load that writes them). Earlier versions' btree indexes (0.2.0's unique (load_id,
        record_number) and retention's (load_id, "timestamp")) cost more to keep up than they saved now that the
        table holds only the loads in flight: they are dropped, once. -#}
    {%- set relation = this.schema ~ '.' ~ this.identifier -%}
    do $migration$
    declare
        old regclass;
    begin
        for old in
            select i.indexrelid::regclass from pg_index as i
            join pg_class as c on c.oid = i.indexrelid
            join pg_am as a on a.oid = c.relam
            where i.indrelid = to_regclass('{{ relation }}') and a.amname <> 'brin'
        loop
            execute 'drop index ' || old;
        end loop;
        if to_regclass('{{ relation }}_load') is null then
            create index {{ this.identifier }}_load on {{ relation }} using brin (load_id);
        end if;
    end
    $migration$
{%- endmacro %}

{% macro own_index(suffix, columns, replaces=none) -%}
    {{ adapter.dispatch('own_index', 'llm_telemetry')(suffix, columns, replaces) }}
{%- endmacro %}
{% macro default__own_index(suffix, columns, replaces=none) -%} {%- endmacro %}
{% macro postgres__own_index(suffix, columns, replaces=none) -%}
    {#- An index <table>_<suffix> on `columns`, created once by a post-hook (dbt's own index config applies only
        when dbt creates the table, not to a table an earlier version built). On a full refresh dbt renames the old
        table to a backup that still holds the index's name until it is dropped at the end of the run: that index
        is dropped first, so the new table gets its own. `replaces`: the end of the definition of an index an
        earlier version built for the same purpose (e.g. '(estimated_cost_usd)'), dropped once. -#}
    {%- set relation = this.schema ~ '.' ~ this.identifier -%}
    {%- set index = this.schema ~ '.' ~ this.identifier ~ '_' ~ suffix -%}
    do $migration$
    declare
        old regclass;
    begin
        if to_regclass('{{ index }}') is not null and not exists (
            select 1 from pg_index
            where indexrelid = to_regclass('{{ index }}') and indrelid = to_regclass('{{ relation }}')
        ) then
            drop index {{ index }};
        end if;
        {%- if replaces %}
        for old in
            select indexrelid::regclass from pg_index
            where indrelid = to_regclass('{{ relation }}') and indexrelid <> coalesce(to_regclass('{{ index }}'), 0)
                and pg_get_indexdef(indexrelid) like '%{{ replaces }}'
        loop
            execute 'drop index ' || old;
        end loop;
        {%- endif %}
        if to_regclass('{{ index }}') is null then
            create index {{ this.identifier }}_{{ suffix }} on {{ relation }} ({{ columns }});
        end if;
    end
    $migration$
{%- endmacro %}

{% macro null_unpriced_costs() -%}
    {{ adapter.dispatch('null_unpriced_costs', 'llm_telemetry')() }}
{%- endmacro %}
{% macro default__null_unpriced_costs() -%} {%- endmacro %}
{% macro postgres__null_unpriced_costs() -%}
    {#- Up to 0.2.0 a group of calls that were all unpriced summed to an estimated_cost_usd of 0; it is NULL now
        (unknown, not free). Rewrites the stored rows of a mart that holds call_measures() once: the column's
        comment records that it was done, so that later runs read only the catalog. -#}
    {%- set relation = this.schema ~ '.' ~ this.identifier -%}
    {%- set marker = 'NULL when every call of the row is unpriced' -%}
    do $migration$
    begin
        if to_regclass('{{ relation }}') is not null and col_description(
            to_regclass('{{ relation }}'),
            (select attnum from pg_attribute where attrelid = to_regclass('{{ relation }}')
                and attname = 'estimated_cost_usd' and not attisdropped)
        ) is distinct from '{{ marker }}' then
            update {{ relation }} set estimated_cost_usd = null
            where unpriced_calls = calls and estimated_cost_usd is not null;
            comment on column {{ relation }}.estimated_cost_usd is '{{ marker }}';
        end if;
    end
    $migration$
{%- endmacro %}

{% macro cost_order_index() -%}
    {#- cost_by_session's index for the most expensive sessions first, unpriced ones (NULL) last, as the dashboard
        orders them ("estimated_cost_usd desc nulls last", read backwards). 0.2.0 indexed the column ascending
        with NULLs last, which that order cannot use: that index is replaced once. -#}
    {{ own_index('cost', 'estimated_cost_usd nulls first', replaces='(estimated_cost_usd)') }}
{%- endmacro %}
