{#- Safe casts from CSV text: each returns NULL for text it cannot type, so a bad value becomes a reject
    with a reason instead of failing the whole run. -#}

{% macro iso_timestamp_pattern() -%}
    '^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d{1,9})?)?(Z|[+-](\d{2})(?::?(\d{2}))?)?$'
{%- endmacro %}

{% macro parse_timestamp(text) -%}
    {#- ISO 8601 with Z or an offset, with or without fractional seconds; 'YYYY-MM-DD HH:MM:SS' without a
        zone is UTC; 9-10 digit epoch seconds are accepted too. Calendar ranges are checked before casting. -#}
    (case
        when {{ text }} ~ '^\d{9,10}(\.\d{1,6})?$' then to_timestamp({{ text }}::numeric)
        when {{ text }} ~ {{ iso_timestamp_pattern() }} then (
            select case
                when p[1]::int >= 1
                    and p[2]::int between 1 and 12
                    and p[3]::int between 1 and (case
                        when p[2]::int = 2 then
                            case when p[1]::int % 4 = 0 and (p[1]::int % 100 <> 0 or p[1]::int % 400 = 0)
                                then 29 else 28 end
                        when p[2]::int in (4, 6, 9, 11) then 30
                        else 31 end)
                    and p[4]::int <= 23 and p[5]::int <= 59 and coalesce(p[6]::int, 0) <= 59
                    and coalesce(p[8]::int, 0) <= 15 and coalesce(p[9]::int, 0) <= 59
                then case
                    when p[7] is null then replace({{ text }}, ',', '.')::timestamp at time zone 'UTC'
                    else replace({{ text }}, ',', '.')::timestamptz
                end
            end
            from (select regexp_match({{ text }}, {{ iso_timestamp_pattern() }}) as p) as parts
        )
    end)
{%- endmacro %}

{% macro parse_count(text) -%}
    {#- A non-negative integer below 10^18 (bigint); '12.0' is accepted as 12. -#}
    (case when {{ text }} ~ '^\d{1,18}(\.0*)?$' then split_part({{ text }}, '.', 1)::bigint end)
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
