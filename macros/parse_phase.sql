{% macro parse_phase(notes) -%}
    {#- The work phase named in free-text notes: 'Phase 5 CI setup' -> '5', 'phase 2.1: ...' -> '2.1'. -#}
    {#- strpos first: a regex costs about 1 us a row, and many notes name no phase. Both read the notes as "C", so
        that the phase of a note is the same in every database collation: 'phase' in ASCII letters of any case,
        then ASCII blanks, ':', '#' or '-', then ASCII digits ([0-9], never \d, which an ICU collation widens to
        every script). The pattern is fixed and the notes are only ever its subject, so no text can make it fail;
        the result is given back in the database's default collation. -#}
    (case when strpos(lower({{ notes }} collate "C"), 'phase') > 0
        then substring({{ notes }} collate "C" from '(?i)\mphase\s*[:#-]?\s*([0-9]+(?:\.[0-9]+)*)') collate "default"
    end)
{%- endmacro %}
