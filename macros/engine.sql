{#- What differs between the engines the project runs on (TELEMETRY_ENGINE: postgres, the default, or spark).
    The models are written once; each spelling that differs is one macro here, dispatched by dbt on the
    target's adapter (adapter.dispatch): default__ is the PostgreSQL / standard SQL spelling, spark__ is Spark
    SQL's. Features only PostgreSQL has (planner fences, unlogged tables, indexes, grants, migrations of tables
    earlier releases built) are postgres__ macros whose default__ is nothing. -#}


{#- Dialect: values and expressions ------------------------------------------------------------------------- -#}

{% macro sql_string(text) -%}
    {#- A string literal holding `text` exactly (e.g. a regex with backslashes). -#}
    {{ adapter.dispatch('sql_string', 'llm_telemetry')(text) }}
{%- endmacro %}
{% macro default__sql_string(text) -%} '{{ text | replace("'", "''") }}' {%- endmacro %}
{#- Spark reads backslash escapes inside string literals. #}
{% macro spark__sql_string(text) -%} '{{ text | replace("\\", "\\\\") | replace("'", "\\'") }}' {%- endmacro %}

{% macro regex_matches(text, pattern) -%}
    {#- Whether `text` matches the regex `pattern` (an SQL expression; the patterns here read the same in
        PostgreSQL's and Java's regex dialects). -#}
    {{ adapter.dispatch('regex_matches', 'llm_telemetry')(text, pattern) }}
{%- endmacro %}
{% macro default__regex_matches(text, pattern) -%} ({{ text }} ~ {{ pattern }}) {%- endmacro %}
{% macro spark__regex_matches(text, pattern) -%} ({{ text }} rlike {{ pattern }}) {%- endmacro %}

{% macro regex_replace_all(text, pattern, replacement) -%}
    {#- Every match of `pattern` (a regex, as Python text) in `text` replaced; \1..\9 in `replacement` name groups. -#}
    {{ adapter.dispatch('regex_replace_all', 'llm_telemetry')(text, pattern, replacement) }}
{%- endmacro %}
{% macro default__regex_replace_all(text, pattern, replacement) -%}
    regexp_replace({{ text }}, {{ sql_string(pattern) }}, {{ sql_string(replacement) }}, 'g')
{%- endmacro %}
{% macro spark__regex_replace_all(text, pattern, replacement) -%}
    regexp_replace({{ text }}, {{ sql_string(pattern) }}, {{ sql_string(modules.re.sub('\\\\([1-9])', '$\\1', replacement)) }})
{%- endmacro %}

{% macro regex_first_group(text, pattern) -%}
    {#- The first group of the first match of `pattern` (Python text) in `text`; NULL when it does not match. -#}
    {{ adapter.dispatch('regex_first_group', 'llm_telemetry')(text, pattern) }}
{%- endmacro %}
{% macro default__regex_first_group(text, pattern) -%}
    substring({{ text }} from {{ sql_string(pattern) }})
{%- endmacro %}
{% macro spark__regex_first_group(text, pattern) -%}
    nullif(regexp_extract({{ text }}, {{ sql_string(pattern) }}, 1), '')
{%- endmacro %}

{% macro text_position(text, part) -%}
    {#- 1-based position of the first `part` in `text`, 0 when there is none. -#}
    {{ adapter.dispatch('text_position', 'llm_telemetry')(text, part) }}
{%- endmacro %}
{% macro default__text_position(text, part) -%} strpos({{ text }}, {{ part }}) {%- endmacro %}
{% macro spark__text_position(text, part) -%} instr({{ text }}, {{ part }}) {%- endmacro %}

{% macro bytewise(text) -%}
    {#- `text` compared and sorted by its bytes, whatever the database's collation. -#}
    {{ adapter.dispatch('bytewise', 'llm_telemetry')(text) }}
{%- endmacro %}
{% macro postgres__bytewise(text) -%} ({{ text }} collate "C") {%- endmacro %}
{#- Spark compares strings by their bytes. #}
{% macro default__bytewise(text) -%} {{ text }} {%- endmacro %}

{% macro in_default_collation(text) -%}
    {{ adapter.dispatch('in_default_collation', 'llm_telemetry')(text) }}
{%- endmacro %}
{% macro postgres__in_default_collation(text) -%} ({{ text }} collate "default") {%- endmacro %}
{% macro default__in_default_collation(text) -%} {{ text }} {%- endmacro %}

{% macro amount_type() -%}
    {#- The type of costs and prices. Spark's decimals lose scale in products of large precision (tokens times
        a price per token), so Spark computes costs in doubles (15 significant digits: far below a cent). -#}
    {{ adapter.dispatch('amount_type', 'llm_telemetry')() }}
{%- endmacro %}
{% macro default__amount_type() -%} numeric {%- endmacro %}
{% macro spark__amount_type() -%} double {%- endmacro %}

{% macro text_of(value) -%}
    {{ adapter.dispatch('text_of', 'llm_telemetry')(value) }}
{%- endmacro %}
{% macro default__text_of(value) -%} {{ value }}::text {%- endmacro %}
{% macro spark__text_of(value) -%} cast({{ value }} as string) {%- endmacro %}

{% macro amount_text(value, text) -%}
    {#- An amount `value` parsed from `text` (parse_amount()), as PostgreSQL's numeric prints it: part of a derived session_id, which
        must be the same on every engine. PostgreSQL keeps the decimals as written ('0.0150' stays '0.0150'). -#}
    {{ adapter.dispatch('amount_text', 'llm_telemetry')(value, text) }}
{%- endmacro %}
{% macro default__amount_text(value, text) -%} {{ value }}::text {%- endmacro %}
{#- Plain decimals are rewritten as PostgreSQL prints them (integer part without leading zeros, the decimals as
    written); an exponent ('1e-05'), rare in a CSV, is printed by Spark's own rule (see README, "Running on
    Spark"). #}
{% macro spark__amount_text(value, text) -%}
    (case
        when {{ value }} is null then null
        when translate({{ text }}, '0123456789', '') in ('', '.') then
            concat(
                coalesce(nullif(regexp_replace(split_part({{ text }}, '.', 1), '^0+', ''), ''), '0'),
                case when split_part({{ text }}, '.', 2) <> '' then concat('.', split_part({{ text }}, '.', 2)) else '' end
            )
        else cast({{ value }} as string)
    end)
{%- endmacro %}


{#- Dialect: time ---------------------------------------------------------------------------------------------- -#}

{% macro cast_timestamp(text) -%}
    {#- A text already checked to name a real instant (parse_timestamp()), cast; no zone means UTC. -#}
    {{ adapter.dispatch('cast_timestamp', 'llm_telemetry')(text) }}
{%- endmacro %}
{% macro default__cast_timestamp(text) -%}
    {#- After the minutes (position 17 on), a + or - can only start a zone offset. -#}
    (case when right({{ text }}, 1) in ('Z', 'z') or strpos(substr({{ text }}, 17), '+') > 0
            or strpos(substr({{ text }}, 17), '-') > 0
        then replace({{ text }}, ',', '.')::timestamptz
        else replace({{ text }}, ',', '.')::timestamp at time zone 'UTC'
    end)
{%- endmacro %}
{#- Spark's session time zone is UTC (the profile sets it), so a value without a zone is UTC. Spark keeps
    microseconds and drops further digits, where PostgreSQL rounds them. #}
{% macro spark__cast_timestamp(text) -%}
    try_cast(replace(upper({{ text }}), ',', '.') as timestamp)
{%- endmacro %}

{% macro epoch_timestamp(text) -%}
    {#- 9-10 digit epoch seconds, up to 6 decimals, as an instant. -#}
    {{ adapter.dispatch('epoch_timestamp', 'llm_telemetry')(text) }}
{%- endmacro %}
{% macro default__epoch_timestamp(text) -%} to_timestamp({{ text }}::numeric) {%- endmacro %}
{% macro spark__epoch_timestamp(text) -%}
    timestamp_micros(cast(cast({{ text }} as decimal(18, 6)) * 1000000 as bigint))
{%- endmacro %}

{% macro timestamp_literal(text) -%}
    {#- An instant written as ISO 8601 text with its offset. -#}
    {{ adapter.dispatch('timestamp_literal', 'llm_telemetry')(text) }}
{%- endmacro %}
{% macro default__timestamp_literal(text) -%} '{{ text }}'::timestamptz {%- endmacro %}
{#- Spark's timestamps begin in the year 1: PostgreSQL's -infinity (no retention cutoff) is that. #}
{% macro spark__timestamp_literal(text) -%}
    {%- if text == '-infinity' -%} timestamp'0001-01-01 00:00:00' {%- else -%} cast('{{ text }}' as timestamp) {%- endif -%}
{%- endmacro %}

{% macro months_ago(months) -%}
    {{ adapter.dispatch('months_ago', 'llm_telemetry')(months) }}
{%- endmacro %}
{% macro default__months_ago(months) -%} (now() - interval '{{ months | int }} months') {%- endmacro %}
{% macro spark__months_ago(months) -%} (current_timestamp() - make_interval(0, {{ months | int }})) {%- endmacro %}

{% macro utc_date(ts) -%}
    {#- The UTC calendar day of an instant. -#}
    {{ adapter.dispatch('utc_date', 'llm_telemetry')(ts) }}
{%- endmacro %}
{% macro default__utc_date(ts) -%} ({{ ts }} at time zone 'UTC')::date {%- endmacro %}
{% macro spark__utc_date(ts) -%} to_date({{ ts }}) {%- endmacro %}

{% macro utc_time_of_day(ts) -%}
    {#- The UTC time of day of an instant, comparable with the price seed's daily_from / daily_to. -#}
    {{ adapter.dispatch('utc_time_of_day', 'llm_telemetry')(ts) }}
{%- endmacro %}
{% macro default__utc_time_of_day(ts) -%} ({{ ts }} at time zone 'UTC')::time {%- endmacro %}
{#- Spark has no time type: the seed's times are text (HH:MM:SS), which compares as the time does. #}
{% macro spark__utc_time_of_day(ts) -%} date_format({{ ts }}, 'HH:mm:ss.SSSSSS') {%- endmacro %}

{% macro utc_iso_text(ts) -%}
    {#- An instant as UTC ISO 8601 text with microseconds (part of a derived session_id). -#}
    {{ adapter.dispatch('utc_iso_text', 'llm_telemetry')(ts) }}
{%- endmacro %}
{% macro default__utc_iso_text(ts) -%} to_char({{ ts }} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') {%- endmacro %}
{% macro spark__utc_iso_text(ts) -%} date_format({{ ts }}, "yyyy-MM-dd'T'HH:mm:ss.SSSSSS") {%- endmacro %}

{% macro calendar_days(first_day, last_day) -%}
    {#- One row (call_date) per day from first_day to last_day, as a select list item. -#}
    {{ adapter.dispatch('calendar_days', 'llm_telemetry')(first_day, last_day) }}
{%- endmacro %}
{% macro default__calendar_days(first_day, last_day) -%}
    generate_series({{ first_day }}, {{ last_day }}, interval '1 day')::date
{%- endmacro %}
{% macro spark__calendar_days(first_day, last_day) -%}
    explode(sequence({{ first_day }}, {{ last_day }}, interval 1 day))
{%- endmacro %}


{#- Dialect: sets ---------------------------------------------------------------------------------------------- -#}

{% macro first_per_key(relation, keys, order) -%}
    {#- Every column of the first row (by `order`) of each `keys` of `relation`, as a select statement. -#}
    {{ adapter.dispatch('first_per_key', 'llm_telemetry')(relation, keys, order) }}
{%- endmacro %}
{% macro default__first_per_key(relation, keys, order) -%}
    select distinct on ({{ keys | join(', ') }}) *
    from {{ relation }}
    order by {{ keys | join(', ') }}, {{ order | join(', ') }}
{%- endmacro %}
{% macro spark__first_per_key(relation, keys, order) -%}
    select * except (first_of_key) from (
        select *, row_number() over (partition by {{ keys | join(', ') }} order by {{ order | join(', ') }})
            as first_of_key
        from {{ relation }}
    ) where first_of_key = 1
{%- endmacro %}

{% macro sorted_distinct(value) -%}
    {#- The distinct values of a group, sorted, as an array. -#}
    {{ adapter.dispatch('sorted_distinct', 'llm_telemetry')(value) }}
{%- endmacro %}
{% macro default__sorted_distinct(value) -%} array_agg(distinct {{ value }} order by {{ value }}) {%- endmacro %}
{% macro spark__sorted_distinct(value) -%} array_sort(collect_set({{ value }})) {%- endmacro %}

{% macro latest_of(value, ts) -%}
    {#- `value` of the group's row with the latest `ts`. -#}
    {{ adapter.dispatch('latest_of', 'llm_telemetry')(value, ts) }}
{%- endmacro %}
{% macro default__latest_of(value, ts) -%} (array_agg({{ value }} order by {{ ts }} desc))[1] {%- endmacro %}
{% macro spark__latest_of(value, ts) -%} max_by({{ value }}, {{ ts }}) {%- endmacro %}


{#- PostgreSQL-only: planner hints, session settings, grants ------------------------------------------------- -#}

{% macro fence() -%}
    {#- Ends a subquery the PostgreSQL planner must not flatten into its parent (so that what it computes is
        computed once a row). -#}
    {{ adapter.dispatch('fence', 'llm_telemetry')() }}
{%- endmacro %}
{% macro postgres__fence() -%} offset 0 {%- endmacro %}
{% macro default__fence() -%} {%- endmacro %}

{% macro not_materialized() -%}
    {{ adapter.dispatch('not_materialized', 'llm_telemetry')() }}
{%- endmacro %}
{% macro postgres__not_materialized() -%} not materialized {%- endmacro %}
{% macro default__not_materialized() -%} {%- endmacro %}

{% macro session_settings() -%}
    {#- Every model's pre-hook: sorts and hash aggregates over a load's rows stay in memory. -#}
    {{ adapter.dispatch('session_settings', 'llm_telemetry')() }}
{%- endmacro %}
{% macro postgres__session_settings() -%} set work_mem = '64MB' {%- endmacro %}
{% macro default__session_settings() -%} {%- endmacro %}

{% macro grant_reader_usage() -%}
    {#- on-run-end: the dashboards' role may use the schema (the marts grant it SELECT). -#}
    {{ adapter.dispatch('grant_reader_usage', 'llm_telemetry')() }}
{%- endmacro %}
{% macro postgres__grant_reader_usage() -%} grant usage on schema {{ target.schema }} to telemetry_reader {%- endmacro %}
{% macro default__grant_reader_usage() -%} {%- endmacro %}

{#- Spark keeps no grants here: its tables are files in the warehouse folder, and who may read them is the file
    system's (see README, "Running on Spark"). #}
{% macro spark__apply_grants(relation, grant_config, should_revoke=True) -%} {%- endmacro %}


{#- How each model is kept up to date -------------------------------------------------------------------------- -#}

{% macro calls_strategy() -%}
    {#- llm_calls: PostgreSQL merges on the key; plain parquet has no merge, so Spark appends the batch's new keys
        (the model's anti-join keeps stored keys out either way). -#}
    {{ return(adapter.dispatch('calls_strategy', 'llm_telemetry')()) }}
{%- endmacro %}
{% macro default__calls_strategy() -%} {{ return('merge') }} {%- endmacro %}
{% macro spark__calls_strategy() -%} {{ return('append') }} {%- endmacro %}

{% macro by_load_strategy() -%}
    {#- rejected_rows and call_conflicts add the loads in flight: delete+insert on load_id on PostgreSQL; on
        Spark, which cannot delete from parquet, an append (a load is in flight in one run only: an interrupted
        one is undone by the loader before the next). -#}
    {{ return(adapter.dispatch('by_load_strategy', 'llm_telemetry')()) }}
{%- endmacro %}
{% macro default__by_load_strategy() -%} {{ return('delete+insert') }} {%- endmacro %}
{% macro spark__by_load_strategy() -%} {{ return('append') }} {%- endmacro %}

{% macro derived_materialization() -%}
    {#- The marts derived from llm_calls: incremental by day or session on PostgreSQL, so that a load costs
        what it brings; on Spark, which cannot delete a day from parquet, tables rebuilt from llm_calls. -#}
    {{ return(adapter.dispatch('derived_materialization', 'llm_telemetry')()) }}
{%- endmacro %}
{% macro default__derived_materialization() -%} {{ return('incremental') }} {%- endmacro %}
{% macro spark__derived_materialization() -%} {{ return('table') }} {%- endmacro %}

{% macro staging_materialization() -%}
    {#- The staging view: a view on PostgreSQL (the loader's dry run reads it); ephemeral on Spark, whose Derby
        catalog keeps a view's text in at most 32,700 characters, fewer than the typing rules compile to. -#}
    {{ return(adapter.dispatch('staging_materialization', 'llm_telemetry')()) }}
{%- endmacro %}
{% macro default__staging_materialization() -%} {{ return('view') }} {%- endmacro %}
{% macro spark__staging_materialization() -%} {{ return('ephemeral') }} {%- endmacro %}

{% macro delete_before_cutoff(column) -%}
    {#- Post-hook of an incremental mart: its rows before the retention cutoff leave (a table rebuilt from
        llm_calls holds none). -#}
    {{ adapter.dispatch('delete_before_cutoff', 'llm_telemetry')(column) }}
{%- endmacro %}
{% macro default__delete_before_cutoff(column) -%}
    delete from {{ this }} where {{ column }} < {{ retention_cutoff() }}
{%- endmacro %}
{% macro spark__delete_before_cutoff(column) -%} {%- endmacro %}

{% macro only_loads_not_in_this(load_id) -%}
    {#- In an incremental model by load: on Spark, which appends, only the loads it does not hold yet (so that a
        load finished again after a crash adds nothing twice); PostgreSQL's delete+insert needs no filter. -#}
    {{ adapter.dispatch('only_loads_not_in_this', 'llm_telemetry')(load_id) }}
{%- endmacro %}
{% macro default__only_loads_not_in_this(load_id) -%} {%- endmacro %}
{% macro spark__only_loads_not_in_this(load_id) -%}
    and {{ load_id }} not in (select distinct load_id from {{ this }})
{%- endmacro %}


{#- Spark seeds ------------------------------------------------------------------------------------------------ -#}

{#- dbt-spark loads a seed's rows through bindings that it quotes without escaping: a NULL text becomes 'None'
    and a backslash in a price rule's regex is read as an escape. The rows are written as literals here instead. #}
{% macro spark__load_csv_rows(model, agate_table) %}
    {%- set column_override = model['config'].get('column_types', {}) -%}
    {%- set statements = [] -%}
    {%- for chunk in agate_table.rows | batch(get_batch_size()) -%}
        {%- set sql -%}
            insert into {{ this.render() }} values
            {% for row in chunk -%}
                ({%- for col_name in agate_table.column_names -%}
                    {%- set type = column_override.get(col_name, adapter.convert_type(agate_table, loop.index0)) -%}
                    cast({{ seed_literal(row[loop.index0]) }} as {{ type }}){{ ", " if not loop.last }}
                {%- endfor -%}){{ "," if not loop.last }}
            {% endfor -%}
        {%- endset -%}
        {%- do adapter.add_query(sql, abridge_sql_log=True) -%}
        {%- if loop.first %}{% do statements.append(sql) %}{% endif -%}
    {%- endfor -%}
    {{ return(statements[0]) }}
{% endmacro %}

{% macro seed_literal(value) -%}
    {%- if value is none -%} null
    {%- elif value is sameas true or value is sameas false -%} {{ value | lower }}
    {%- elif value is number -%} {{ value }}
    {%- elif value.isoformat is defined -%} '{{ value.isoformat() }}'
    {%- else -%} {{ sql_string(value | string) }}
    {%- endif -%}
{%- endmacro %}
