{#- Safe casts from CSV text: each returns NULL for text it cannot type, so a bad value becomes a reject
    with a reason instead of failing the whole run. -#}

{% macro iso_timestamp_pattern() -%}
    {#- Year 0001-9999, real months, days 01-31, hours 00-23, minutes and seconds 00-59, up to 9 fractional
        digits, and Z or an offset up to 15:59. The day is checked against the month in parse_timestamp(). -#}
    '^(000[1-9]|00[1-9]\d|0[1-9]\d\d|[1-9]\d{3})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d([.,]\d{1,9})?)?(Z|[+-](0\d|1[0-5])(:?[0-5]\d)?)?$'
{%- endmacro %}

{% macro parse_timestamp(text) -%}
    {#- ISO 8601 with Z or an offset, with or without fractional seconds; 'YYYY-MM-DD HH:MM:SS' without a
        zone is UTC; 9-10 digit epoch seconds are accepted too. Only text that names a real instant is cast
        (nested CASEs fix the order), so a bad value gives NULL, never an error.
        Speed matters here (it runs for every row): PostgreSQL regexes cost about 1 us a call, so the shapes
        agents write are recognised by their digit pattern with translate() and checked with substr(); any
        other spelling takes the regex path. -#}
    (case
        when translate({{ text }}, '0123456789', '0000000000') in (
            '0000-00-00T00:00:00Z', '0000-00-00 00:00:00', '0000-00-00T00:00:00', '0000-00-00T00:00:00+00:00',
            '0000-00-00T00:00:00-00:00', '0000-00-00T00:00:00.000Z', '0000-00-00T00:00:00.000000Z',
            '0000-00-00T00:00:00.000000+00:00', '0000-00-00 00:00:00.000000', '0000-00-00T00:00:00.000000'
        ) then
            case when substr({{ text }}, 1, 4) <> '0000'
                    and substr({{ text }}, 6, 2)::int between 1 and 12
                    and substr({{ text }}, 9, 2)::int between 1 and {{ _days_in_month(text) }}
                    and substr({{ text }}, 12, 2)::int <= 23
                    and substr({{ text }}, 15, 2)::int <= 59
                    and substr({{ text }}, 18, 2)::int <= 59
                    and (substr({{ text }}, length({{ text }}) - 5, 1) not in ('+', '-')
                         or substr({{ text }}, length({{ text }}) - 4, 2)::int <= 15)
            then {{ _cast_timestamp(text) }}
            end
        when {{ text }} ~ '^\d{9,10}(\.\d{1,6})?$' then to_timestamp({{ text }}::numeric)
        when {{ text }} ~ {{ iso_timestamp_pattern() }} then
            case when substr({{ text }}, 9, 2)::int <= {{ _days_in_month(text) }}
            then {{ _cast_timestamp(text) }}
            end
    end)
{%- endmacro %}

{% macro _days_in_month(text) -%}
    (case substr({{ text }}, 6, 2)
        when '02' then
            case when substr({{ text }}, 1, 4)::int % 4 = 0
                    and (substr({{ text }}, 1, 4)::int % 100 <> 0 or substr({{ text }}, 1, 4)::int % 400 = 0)
                then 29 else 28 end
        when '04' then 30 when '06' then 30 when '09' then 30 when '11' then 30
        else 31 end)
{%- endmacro %}

{% macro _cast_timestamp(text) -%}
    {#- After the minutes (position 17 on), a + or - can only start a zone offset. -#}
    (case when right({{ text }}, 1) = 'Z' or strpos(substr({{ text }}, 17), '+') > 0
            or strpos(substr({{ text }}, 17), '-') > 0
        then replace({{ text }}, ',', '.')::timestamptz
        else replace({{ text }}, ',', '.')::timestamp at time zone 'UTC'
    end)
{%- endmacro %}

{% macro parse_count(text) -%}
    {#- A non-negative integer below 10^18 (bigint); '12.0' is accepted as 12. No regex: see parse_timestamp. -#}
    (case
        when length({{ text }}) between 1 and 18 and ltrim({{ text }}, '0123456789') = '' then {{ text }}::bigint
        when strpos({{ text }}, '.') > 1
            and length(split_part({{ text }}, '.', 1)) <= 18
            and ltrim(split_part({{ text }}, '.', 1), '0123456789') = ''
            and rtrim(substr({{ text }}, strpos({{ text }}, '.') + 1), '0') = ''
        then split_part({{ text }}, '.', 1)::bigint
    end)
{%- endmacro %}

{% macro parse_amount(text) -%}
    {#- A non-negative decimal amount such as a cost in USD. -#}
    (case when {{ text }} ~ '^(\d{1,12}(\.\d{0,18})?|\.\d{1,18})([eE][+-]?\d{1,2})?$' then {{ text }}::numeric end)
{%- endmacro %}

{% macro parse_boolean(text) -%}
    {#- true/false/1/0/yes/no in any case. -#}
    (case lower({{ text }})
        when 'true' then true when '1' then true when 'yes' then true
        when 'false' then false when '0' then false when 'no' then false
    end)
{%- endmacro %}
