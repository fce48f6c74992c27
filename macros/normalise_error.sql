{% macro normalise_error(message) -%}
    {#- Groups error messages that differ only in numbers, ids, case or spacing:
        'Timeout after 120s (req 8f3a...)' and 'timeout after 30s (req 91bc...)' -> 'timeout after #s (req #)'. -#}
    left(
        trim({{ regex_replace_all(regex_replace_all(regex_replace_all('lower(' ~ message ~ ')',
            '[0-9a-f]{8,}(-[0-9a-f]{4,})*', '#'),
            '[0-9]+([.,:][0-9]+)*', '#'),
            '\\s+', ' ') }}),
        200
    )
{%- endmacro %}
