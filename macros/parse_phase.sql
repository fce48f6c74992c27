{% macro parse_phase(notes) -%}
    {#- The work phase named in free-text notes: 'Phase 5 CI setup' -> '5', 'phase 2.1: ...' -> '2.1'. -#}
    substring({{ notes }} from '(?i)\mphase\s*[:#-]?\s*([0-9]+(?:\.[0-9]+)*)')
{%- endmacro %}
