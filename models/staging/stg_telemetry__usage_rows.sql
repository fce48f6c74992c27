{{ config(materialized=staging_materialization()) }}

with

source as (

    select * from {{ source('telemetry_raw', 'usage_rows') }}

),

cleaned as (

    {#- The fence() ending each subquery below keeps PostgreSQL from recomputing a trimmed or parsed value at
        every place that uses it (those functions are the cost of a load).
        Every value but the notes is trimmed of blanks (spaces, tabs, line breaks, no-break and other Unicode
        spaces, zero-width space, BOM: blank_characters()); the notes are kept as written, CRLF made LF.
        The text columns are trimmed here. The values to type (the *_text columns) are only trimmed of spaces
        here, which costs a third of trimming every blank: parse_padded() below trims the other blanks only
        when a value does not parse as it is (no accepted spelling begins or ends with a blank). -#}
    select
        source.load_id,
        source.record_number,
        source.line_number,
        source.loaded_at,
        source.parse_error,
        source.timestamp as raw_timestamp,
        source.model as raw_model,
        source.prompt_tokens as raw_prompt_tokens,
        source.completion_tokens as raw_completion_tokens,
        source.task_success as raw_task_success,
        source.task_type as raw_task_type,
        source.duration_ms as raw_duration_ms,
        source.notes as raw_notes,
        nullif(trim(source.timestamp), '') as timestamp_text,
        {{ trim_blanks('source.model') }} as model,
        nullif(trim(source.prompt_tokens), '') as prompt_tokens_text,
        nullif(trim(source.completion_tokens), '') as completion_tokens_text,
        nullif(trim(source.task_success), '') as task_success_text,
        nullif(trim(source.duration_ms), '') as duration_ms_text,
        nullif(trim(source.cost_usd), '') as cost_usd_text,
        nullif(trim(source.cache_read_tokens), '') as cache_read_tokens_text,
        nullif(trim(source.cache_write_tokens), '') as cache_write_tokens_text,
        coalesce({{ trim_blanks('source.task_type') }}, '(none)') as prompt_name,
        nullif(replace(source.notes, chr(13) || chr(10), chr(10)), '') as notes,
        {{ trim_blanks('source.session_id') }} as session_id_text,
        {{ trim_blanks('source.error_message') }} as error_message_text

    from source
    {{ fence() }}

),

typed as (

    select
        cleaned.*,
        {{ parse_padded(parse_timestamp, 'cleaned.timestamp_text') }} as timestamp,
        {{ parse_padded(parse_count, 'cleaned.prompt_tokens_text') }} as input_tokens,
        {{ parse_padded(parse_count, 'cleaned.completion_tokens_text') }} as output_tokens,
        {{ parse_padded(parse_count, 'cleaned.duration_ms_text') }} as duration_ms,
        {{ parse_padded(parse_count, 'cleaned.cache_read_tokens_text') }} as cache_read_tokens,
        {{ parse_padded(parse_count, 'cleaned.cache_write_tokens_text') }} as cache_write_tokens,
        {{ parse_padded(parse_boolean, 'cleaned.task_success_text') }} as success,
        {{ parse_padded(parse_amount, 'cleaned.cost_usd_text') }} as cost_usd

    from cleaned
    {{ fence() }}

),

checked as (

    select
        *,
        case
            when parse_error is not null then parse_error
            {#- A value that did not parse is empty when nothing but blanks is left of it: only these rows pay for
                trim_blanks(). #}
            when timestamp is null and {{ trim_blanks('timestamp_text') }} is null then 'timestamp is empty'
            when timestamp is null
                then 'timestamp is not ISO 8601 (e.g. 2026-02-23T22:19:28Z) or YYYY-MM-DD HH:MM:SS'
            when timestamp > now() + interval '1 day' then 'timestamp is more than a day in the future'
            when timestamp < {{ timestamp_literal('0001-01-01T00:00:00+00:00') }} then 'timestamp is before the year 1 (UTC)'
            when model is null then 'model is empty'
            when input_tokens is null and {{ trim_blanks('prompt_tokens_text') }} is not null
                then 'prompt_tokens is not a non-negative integer'
            when output_tokens is null and {{ trim_blanks('completion_tokens_text') }} is not null
                then 'completion_tokens is not a non-negative integer'
            when duration_ms is null and {{ trim_blanks('duration_ms_text') }} is not null
                then 'duration_ms is not a non-negative integer'
            when cache_read_tokens is null and {{ trim_blanks('cache_read_tokens_text') }} is not null
                then 'cache_read_tokens is not a non-negative integer'
            when cache_write_tokens is null and {{ trim_blanks('cache_write_tokens_text') }} is not null
                then 'cache_write_tokens is not a non-negative integer'
            when success is null and {{ trim_blanks('task_success_text') }} is not null
                then 'task_success is not a boolean (true/false/1/0/yes/no)'
            when cost_usd is null and {{ trim_blanks('cost_usd_text') }} is not null
                then 'cost_usd is not a non-negative number'
        end as rejection_reason

    from typed

),

final as (

    select
        load_id,
        record_number,
        line_number,
        loaded_at,
        rejection_reason,
        timestamp,
        {{ parse_phase('notes') }} as phase,
        prompt_name,
        model,
        input_tokens,
        output_tokens,
        coalesce(input_tokens, 0) + coalesce(output_tokens, 0) as total_tokens,
        cache_read_tokens,
        cache_write_tokens,
        success,
        case
            when success then null
            else coalesce(error_message_text, case when success = false then notes end)
        end as error_message,
        duration_ms,
        cost_usd,
        coalesce(
            session_id_text,
            md5(concat_ws(chr(31),
                {{ utc_iso_text('timestamp') }},
                model,
                coalesce({{ text_of('input_tokens') }}, ''),
                coalesce({{ text_of('output_tokens') }}, ''),
                coalesce({{ text_of('cache_read_tokens') }}, ''),
                coalesce({{ text_of('cache_write_tokens') }}, ''),
                coalesce({{ text_of('success') }}, ''),
                prompt_name,
                coalesce({{ text_of('duration_ms') }}, ''),
                coalesce(notes, ''),
                coalesce(error_message_text, ''),
                coalesce({{ amount_text('cost_usd', trim_blanks('cost_usd_text')) }}, '')
            ))
        ) as session_id,
        session_id_text is null as session_id_derived,
        notes,
        raw_timestamp,
        raw_model,
        raw_prompt_tokens,
        raw_completion_tokens,
        raw_task_success,
        raw_task_type,
        raw_duration_ms,
        raw_notes

    from checked

)

select * from final
