{#- Total casts from CSV text: each returns NULL for text it cannot type, so a bad value becomes a reject with a
    reason instead of failing the whole run. No text, in any database collation, makes one of them raise:
    - a cast (to int, bigint, numeric or timestamptz) only ever sees text already checked, character by
      character, to be in the cast's own domain (ASCII digits, real calendar fields, offsets up to 15:59);
    - character classes are spelled [0-9], never \d: in a database with an ICU or PG_UNICODE_FAST collation \d
      also matches other scripts' digits (Arabic-Indic, fullwidth...), which no cast accepts;
    - the checks inside a CASE branch are only evaluated once the branch's shape is known, and every one of them
      is itself total (substr() of a checked shape, comparisons of text). -#}

{% macro blank_characters() -%}
    {#- What trim_blanks() removes from both ends of a value: the Unicode White_Space characters (ASCII space, tab,
        LF, VT, FF, CR, NEL, no-break spaces, the U+2000 spaces, line and paragraph separators, ideographic space)
        and the two invisible ones that copy and paste leaves behind: zero-width space and the byte order mark. -#}
    {{ adapter.dispatch('blank_characters', 'llm_telemetry')() }}
{%- endmacro %}
{% macro default__blank_characters() -%}
    E' \t\n\u000b\u000c\r\u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\u200b\ufeff'
{%- endmacro %}
{#- Spark reads the same backslash escapes in any string literal. #}
{% macro spark__blank_characters() -%}
    ' \t\n\u000b\u000c\r\u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\u200b\ufeff'
{%- endmacro %}

{% macro trim_blanks(text) -%}
    {#- The value with blank_characters() trimmed from both ends; NULL when nothing else is left. -#}
    nullif(btrim({{ text }}, {{ blank_characters() }}), '')
{%- endmacro %}

{% macro iso_timestamp_pattern() -%}
    {#- Year 0001-9999, real months, days 01-31, hours 00-23, minutes and seconds 00-59 (no leap second, no
        24:00), up to 9 fractional digits after . or ,, and Z or an offset up to 15:59 (PostgreSQL's limit). T and
        Z may be lower case (RFC 3339). The day is checked against the month in parse_timestamp(). -#}
    {{- return('^(000[1-9]|00[1-9][0-9]|0[1-9][0-9][0-9]|[1-9][0-9][0-9][0-9])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.,][0-9]{1,9})?)?([Zz]|[+-](0[0-9]|1[0-5])(:?[0-5][0-9])?)?$') -}}
{%- endmacro %}

{% macro parse_timestamp(text) -%}
    {#- ISO 8601 with Z or an offset, with or without fractional seconds; 'YYYY-MM-DD HH:MM:SS' without a
        zone is UTC; 9-10 digit epoch seconds are accepted too. Only text that names a real instant is cast
        (nested CASEs fix the order), so a bad value gives NULL, never an error.
        Speed matters here (it runs for every row): PostgreSQL regexes cost about 1 us a call, so the shapes
        agents write are recognised by their digit pattern with translate() (which maps ASCII digits only, so a
        0 of the shape is an ASCII digit) and checked with substr(); any other spelling takes the regex path. -#}
    (case
        when translate({{ text }}, '0123456789', '0000000000') in (
            '0000-00-00T00:00:00Z', '0000-00-00 00:00:00', '0000-00-00T00:00:00', '0000-00-00T00:00:00+00:00',
            '0000-00-00T00:00:00-00:00', '0000-00-00T00:00:00.000Z', '0000-00-00T00:00:00.000000Z',
            '0000-00-00T00:00:00.000000+00:00', '0000-00-00 00:00:00.000000', '0000-00-00T00:00:00.000000'
        ) then
            case when substr({{ text }}, 1, 4) <> '0000'
                    and cast(substr({{ text }}, 6, 2) as int) between 1 and 12
                    and cast(substr({{ text }}, 9, 2) as int) between 1 and {{ _days_in_month(text) }}
                    and cast(substr({{ text }}, 12, 2) as int) <= 23
                    and cast(substr({{ text }}, 15, 2) as int) <= 59
                    and cast(substr({{ text }}, 18, 2) as int) <= 59
                    {#- An offset ends these shapes as +HH:MM: its hours AND its minutes must be in range. #}
                    and (substr({{ text }}, length({{ text }}) - 5, 1) not in ('+', '-')
                         or (cast(substr({{ text }}, length({{ text }}) - 4, 2) as int) <= 15
                             and cast(substr({{ text }}, length({{ text }}) - 1, 2) as int) <= 59))
            then {{ cast_timestamp(text) }}
            end
        when {{ regex_matches(text, "'^[0-9]{9,10}([.][0-9]{1,6})?$'") }} then {{ epoch_timestamp(text) }}
        when {{ regex_matches(text, sql_string(iso_timestamp_pattern())) }} then
            case when cast(substr({{ text }}, 9, 2) as int) <= {{ _days_in_month(text) }}
            then {{ cast_timestamp(text) }}
            end
    end)
{%- endmacro %}

{% macro _days_in_month(text) -%}
    (case substr({{ text }}, 6, 2)
        when '02' then
            case when cast(substr({{ text }}, 1, 4) as int) % 4 = 0
                    and (cast(substr({{ text }}, 1, 4) as int) % 100 <> 0 or cast(substr({{ text }}, 1, 4) as int) % 400 = 0)
                then 29 else 28 end
        when '04' then 30 when '06' then 30 when '09' then 30 when '11' then 30
        else 31 end)
{%- endmacro %}

{% macro parse_count(text) -%}
    {#- A non-negative integer below 10^18 (bigint): at most 18 ASCII digits, no sign; '12.0' is accepted as 12.
        No regex: see parse_timestamp. translate() deleting the ten ASCII digits leaves '' only for ASCII
        digits. -#}
    (case
        when length({{ text }}) between 1 and 18 and translate({{ text }}, '0123456789', '') = ''
            then cast({{ text }} as bigint)
        when {{ text_position(text, "'.'") }} > 1
            and length(split_part({{ text }}, '.', 1)) <= 18
            and translate(split_part({{ text }}, '.', 1), '0123456789', '') = ''
            and translate(substr({{ text }}, {{ text_position(text, "'.'") }} + 1), '0', '') = ''
        then cast(split_part({{ text }}, '.', 1) as bigint)
    end)
{%- endmacro %}

{% macro parse_amount(text) -%}
    {#- A non-negative decimal amount such as a cost in USD: up to 12 ASCII digits, optionally a point and up to 18
        decimals, optionally an exponent of 1-2 digits (Python writes 1e-05). No sign, NaN or Infinity. Plain
        decimals are checked without a regex: translate() deletes the ASCII digits, so what is left is the
        point or nothing. -#}
    (case
        when translate({{ text }}, '0123456789', '') in ('', '.') then
            case when {{ text }} <> '.'
                    and length(split_part({{ text }}, '.', 1)) <= 12
                    and length(split_part({{ text }}, '.', 2)) <= 18
            then cast({{ text }} as {{ amount_type() }})
            end
        when {{ regex_matches(text, "'^([0-9]{1,12}([.][0-9]{0,18})?|[.][0-9]{1,18})[eE][+-]?[0-9]{1,2}$'") }}
        then cast({{ text }} as {{ amount_type() }})
    end)
{%- endmacro %}

{% macro parse_boolean(text) -%}
    {#- true/false/1/0/yes/no in any case. Lower-cased as bytes (ASCII letters only, bytewise()): the same in
        every database collation, and cheaper than a locale's lower(). -#}
    (case lower({{ bytewise(text) }})
        when 'true' then true when '1' then true when 'yes' then true
        when 'false' then false when '0' then false when 'no' then false
    end)
{%- endmacro %}

{% macro parse_padded(parse, text) -%}
    {#- parse(), one of the macros above, of the text trimmed of every blank (trim_blanks()), for a text already
        trimmed of spaces: the text as it is first, as values padded with other blanks are rare and btrim() with
        every blank costs three times trim(); then, only when it does not parse and has other blanks at its ends,
        the text trimmed of them. The same result as parse(trim_blanks(text)): no accepted spelling begins or ends
        with a blank. -#}
    coalesce(
        {{ parse(text) }},
        case when btrim({{ text }}, {{ blank_characters() }}) <> {{ text }} then {{ parse(trim_blanks(text)) }} end
    )
{%- endmacro %}
