{#- Model-name matching against the price seed, the way genai-prices matches (see README, "Cost"). -#}

{% macro compact_date_pattern() -%}
    {#- A compact date suffix such as -20251211 (a real calendar date of 2000-2099), followed by -, : or the end:
        the same rule as genai-prices' _normalize_compact_dated_ref, which tests/test_contract.py checks this
        against. The leading lookahead does the calendar check (lookaheads never capture). The regex, as text:
        sql_string() makes it a literal of the engine's dialect. -#}
    {{- return('-(?=(?:20\\d\\d(?:(?:0[13578]|1[02])(?:0[1-9]|[12]\\d|3[01])|(?:0[469]|11)(?:0[1-9]|[12]\\d|30)|02(?:0[1-9]|1\\d|2[0-8]))|20(?:[02468][048]|[13579][26])0229)(?:-|:|$))(20\\d\\d)(\\d\\d)(\\d\\d)') -}}
{%- endmacro %}

{% macro compact_dates_rewritten(name) -%}
    {#- The name with every compact date suffix rewritten: -20251211 -> -2025-12-11. -#}
    {{ regex_replace_all(name, compact_date_pattern(), '-\\1-\\2-\\3') }}
{%- endmacro %}

{% macro price_rule_matches(name, match_type, match_value) -%}
    (case {{ match_type }}
        when 'equals' then {{ name }} = {{ match_value }}
        when 'starts_with' then left({{ name }}, length({{ match_value }})) = {{ match_value }}
        when 'ends_with' then right({{ name }}, length({{ match_value }})) = {{ match_value }}
        when 'contains' then {{ text_position(name, match_value) }} > 0
        when 'regex' then {{ regex_matches(name, match_value) }}
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
                    else {{ regex_replace_all('lower(m.model)', '^.*/', '') }}
                end as name
            from (select distinct model from {{ models_relation }}) as m
            left join providers as p
                on {{ text_position('m.model', "'/'") }} > 0 and p.provider_id = split_part(lower(m.model), '/', 1)
        ),
        {#- The first provider (provider_order) whose provider_match fits each name without a known prefix. -#}
        matched_providers as (
            select n.name, p.provider_id, p.provider_order
            from (select distinct name from names where prefix_provider is null) as n
            join providers as p on {{ regex_matches('n.name', 'p.provider_match') }}
        ),
        first_providers as (
            {{ first_per_key('matched_providers', ['name'], ['provider_order']) }}
        ),
        chosen as (
            select
                n.model,
                n.name,
                {{ compact_dates_rewritten('n.name') }} as dated_name,
                coalesce(n.prefix_provider, f.provider_id) as provider_id
            from names as n
            left join first_providers as f on f.name = n.name and n.prefix_provider is null
        ),
        passes as (
            select
                c.model,
                r.provider_id,
                r.match_order,
                case
                    when {{ price_rule_matches('c.name', 'r.match_type', 'r.match_value') }} then 1
                    when {{ price_rule_matches('c.dated_name', 'r.match_type', 'r.match_value') }} then 2
                end as pass
            from chosen as c
            join {{ ref('model_prices') }} as r on r.provider_id = c.provider_id
        ),
        matching as (
            select model, provider_id, match_order, pass from passes where pass is not null
        ),
        matches as (
            select model, provider_id, match_order from (
                {{ first_per_key('matching', ['model'], ['pass', 'match_order']) }}
            ) as first_matches
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

{% macro priced_calls(calls) -%}
    {#- Every column of `calls` (a relation or CTE with model, timestamp and the token counts), plus the price
        chosen for it (price_provider_id, price_model_id) and computed_cost_usd, NULL for an unpriced model: the
        seed rule chosen as genai-prices chooses (price_rules_for_models), the period in effect at the call's
        timestamp, long-context tiers and off-peak windows. Cached tokens are taken out of the input tokens only
        when the rule prices them. Used by int_llm_calls__priced for new calls and by reprice_calls() for the
        stored ones. -#}
    select
        c.*,
        p.provider_id as price_provider_id,
        p.model_id as price_model_id,
        case when p.model_id is not null then
            (
                greatest(
                    coalesce(c.input_tokens, 0)
                    - case when p.cache_read_mtok is not null then coalesce(c.cache_read_tokens, 0) else 0 end
                    - case when p.cache_write_mtok is not null then coalesce(c.cache_write_tokens, 0) else 0 end,
                    0
                ) * {{ token_price('input') }}
                + coalesce(c.output_tokens, 0) * {{ token_price('output') }}
                + coalesce(c.cache_read_tokens, 0) * {{ token_price('cache_read') }}
                + coalesce(c.cache_write_tokens, 0) * {{ token_price('cache_write') }}
            ) * 0.000001
        end as computed_cost_usd
    from {{ calls }} as c
    left join {{ price_rules_for_models(calls) }} as r on r.model = c.model
    left join {{ ref('model_prices') }} as p
        on p.provider_id = r.provider_id
        and p.match_order = r.match_order
        and (p.valid_from is null or c.timestamp >= p.valid_from)
        and (p.valid_to is null or c.timestamp < p.valid_to)
        and (p.daily_from is null or (
            {{ utc_time_of_day('c.timestamp') }} >= p.daily_from
            and {{ utc_time_of_day('c.timestamp') }} < p.daily_to
        ))
{%- endmacro %}

{% macro reprice_calls() -%}
    {#- `telemetry prices reprice`: the stored calls priced again with the seed as it is now, in place (llm_calls
        is the only copy of a call; the landing rows are gone once a load is done). A reported cost stays the
        call's estimated cost, as for a new call. Run by the loader with `dbt run-operation`; the marts are
        rebuilt afterwards. -#}
    {%- set calls = ref('llm_calls') -%}
    {%- set statement -%}
        with stored as (
            select timestamp, session_id, prompt_name, model, input_tokens, output_tokens,
                cache_read_tokens, cache_write_tokens, reported_cost_usd
            from {{ calls }}
        ),
        priced as (
            {{ priced_calls('stored') }}
        )
        update {{ calls }} as t
        set estimated_cost_usd = coalesce(p.reported_cost_usd, p.computed_cost_usd),
            cost_source = case when p.reported_cost_usd is not null then 'reported'
                               when p.computed_cost_usd is not null then 'estimated' end,
            price_provider_id = p.price_provider_id,
            price_model_id = p.price_model_id
        from priced as p
        where t.timestamp = p.timestamp
            and md5(t.session_id) = md5(p.session_id) and md5(t.prompt_name) = md5(p.prompt_name)
            and t.session_id = p.session_id and t.prompt_name = p.prompt_name
            and (t.estimated_cost_usd, t.cost_source, t.price_provider_id, t.price_model_id) is distinct from
                (coalesce(p.reported_cost_usd, p.computed_cost_usd),
                 case when p.reported_cost_usd is not null then 'reported'
                      when p.computed_cost_usd is not null then 'estimated' end,
                 p.price_provider_id, p.price_model_id)
    {%- endset -%}
    {%- do run_query(statement) -%}
{%- endmacro %}
