{% macro parse_phase(notes) -%}
    {#- The work phase named in free-text notes: 'Phase 5 CI setup' -> '5', 'phase 2.1: ...' -> '2.1'. -#}
    {#- strpos first: a regex costs about 1 us a row, and many notes name no phase. Both read the notes as "C", so
        that the phase of a note is the same in every database collation: 'phase' in ASCII letters of any case,
        then ASCII blanks, ':', '#' or '-', then ASCII digits ([0-9], never \d, which an ICU collation widens to
        every script). The pattern is fixed and the notes are only ever its subject, so no text can make it fail;
        the result is given back in the database's default collation. -#}
    {#- 'phase' must start a word: what precedes it is the start or a character that is not an ASCII letter, digit
        or _ (PostgreSQL's \m, spelled so that Java's regexes, Spark's, read it the same). -#}
    (case when {{ text_position('lower(' ~ bytewise(notes) ~ ')', "'phase'") }} > 0
        then {{ in_default_collation(regex_first_group(bytewise(notes),
                                                       '(?i)(?:^|[^a-zA-Z0-9_])phase\\s*[:#-]?\\s*([0-9]+(?:\\.[0-9]+)*)')) }}
    end)
{%- endmacro %}
