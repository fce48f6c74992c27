{#- Model-name matching against the price seed, the way genai-prices matches (see README, "Cost"). -#}

{% macro compact_date_pattern() -%}
    {#- A compact date suffix such as -20251211 (a real calendar date of 2000-2099), followed by -, : or the end:
        the same rule as genai-prices' _normalize_compact_dated_ref, which tests/test_contract.py checks this
        against. The leading lookahead does the calendar check (PostgreSQL lookaheads never capture). -#}
    '-(?=(?:20\d\d(?:(?:0[13578]|1[02])(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)(?:0[1-9]|[12]\d|30)|02(?:0[1-9]|1\d|2[0-8]))|20(?:[02468][048]|[13579][26])0229)(?:-|:|$))(20\d\d)(\d\d)(\d\d)'
{%- endmacro %}

{% macro compact_dates_rewritten(name) -%}
    {#- The name with every compact date suffix rewritten: -20251211 -> -2025-12-11. -#}
    regexp_replace({{ name }}, {{ compact_date_pattern() }}, '-\1-\2-\3', 'g')
{%- endmacro %}

{% macro price_rule_matches(name, match_type, match_value) -%}
    (case {{ match_type }}
        when 'equals' then {{ name }} = {{ match_value }}
        when 'starts_with' then starts_with({{ name }}, {{ match_value }})
        when 'ends_with' then right({{ name }}, length({{ match_value }})) = {{ match_value }}
        when 'contains' then strpos({{ name }}, {{ match_value }}) > 0
        when 'regex' then {{ name }} ~ {{ match_value }}
    end)
{%- endmacro %}

{% macro price_rules_for_models(models_relation) -%}
    {#- For each distinct `model` of models_relation: the price rule (provider_id, match_order) that prices it,
        or no row when no rule does. Time-independent: each rule's periods tile all time, so the period is
        chosen afterwards from the call's timestamp.
        1. The name is lower-cased. A 'provider/' prefix naming a provider of the seed selects that provider
           (like calc_price(..., provider_id=...)); any other prefix is dropped and the provider is chosen
           as in 2.
        2. Otherwise the provider is the first, in genai-prices' order, whose provider_match fits the name.
        3. Within the provider, the first rule (match_order) matching the name, else the name with compact
           date suffixes rewritten. -#}
    (
        with
        providers as (
            select distinct provider_id, provider_order, provider_match from {{ ref('model_prices') }}
        ),
        names as (
            select
                m.model,
                p.provider_id as prefix_provider,
                case
                    when p.provider_id is not null then substr(lower(m.model), length(p.provider_id) + 2)
                    else regexp_replace(lower(m.model), '^.*/', '')
                end as name
            from (select distinct model from {{ models_relation }}) as m
            left join providers as p
                on strpos(m.model, '/') > 0 and p.provider_id = split_part(lower(m.model), '/', 1)
        ),
        chosen as (
            select
                n.model,
                n.name,
                {{ compact_dates_rewritten('n.name') }} as dated_name,
                coalesce(n.prefix_provider, (
                    select p.provider_id from providers as p
                    where n.name ~ p.provider_match
                    order by p.provider_order
                    limit 1
                )) as provider_id
            from names as n
        ),
        matches as (
            select distinct on (c.model)
                c.model,
                r.provider_id,
                r.match_order
            from chosen as c
            join {{ ref('model_prices') }} as r on r.provider_id = c.provider_id
            cross join lateral (
                select case
                    when {{ price_rule_matches('c.name', 'r.match_type', 'r.match_value') }} then 1
                    when {{ price_rule_matches('c.dated_name', 'r.match_type', 'r.match_value') }} then 2
                end as pass
            ) as m
            where m.pass is not null
            order by c.model, m.pass, r.match_order
        )
        select * from matches
    )
{%- endmacro %}

{% macro token_price(kind) -%}
    {#- Price per million tokens of one kind; long-context tiers apply to all tokens above the threshold. -#}
    coalesce(case when p.tier_start_tokens is not null and coalesce(c.input_tokens, 0) > p.tier_start_tokens
                  then p.tier_{{ kind }}_mtok end,
             p.{{ kind }}_mtok, 0)
{%- endmacro %}
