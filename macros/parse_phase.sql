{% macro parse_phase(notes) -%}
    {#- The work phase named in free-text notes: 'Phase 5 CI setup' -> '5', 'phase 2.1: ...' -> '2.1'. -#}
    {#- strpos first: a regex costs about 1 us a row, and many notes name no phase. -#}
    (case when strpos(lower({{ notes }}), 'phase') > 0
        then substring({{ notes }} from '(?i)\mphase\s*[:#-]?\s*([0-9]+(?:\.[0-9]+)*)')
    end)
{%- endmacro %}
