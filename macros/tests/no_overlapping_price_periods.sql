{% test no_overlapping_price_periods(model) %}
    {{ adapter.dispatch('test_no_overlapping_price_periods', 'llm_telemetry')(model) }}
{% endtest %}

{% macro default__test_no_overlapping_price_periods(model) %}
{#- Two rows of the same provider and match rule must never both apply at one instant: their
    [valid_from, valid_to) periods, or else their daily windows, must be disjoint. -#}
select a.provider_id, a.match_type, a.match_value, a.valid_from, b.valid_from as other_valid_from
from {{ model }} as a
join {{ model }} as b
    on a.provider_id = b.provider_id
    and a.match_type = b.match_type
    and a.match_value = b.match_value
    and (a.valid_from, a.daily_from, a.match_order) < (b.valid_from, b.daily_from, b.match_order)
        is not false
    and a.ctid <> b.ctid
where tstzrange(a.valid_from, a.valid_to) && tstzrange(b.valid_from, b.valid_to)
    and (a.daily_from is null or b.daily_from is null
         or (a.daily_from < b.daily_to and b.daily_from < a.daily_to))
{% endmacro %}

{#- Spark has neither row ids nor ranges: each row is numbered, and [from, to) periods overlap when each starts
    before the other ends (a missing bound is open). #}
{% macro spark__test_no_overlapping_price_periods(model) %}
with numbered as (
    select *, row_number() over (order by provider_id, match_order, valid_from, daily_from) as row_id
    from {{ model }}
)
select a.provider_id, a.match_type, a.match_value, a.valid_from, b.valid_from as other_valid_from
from numbered as a
join numbered as b
    on a.provider_id = b.provider_id
    and a.match_type = b.match_type
    and a.match_value = b.match_value
    and a.row_id < b.row_id
where (a.valid_from is null or b.valid_to is null or a.valid_from < b.valid_to)
    and (b.valid_from is null or a.valid_to is null or b.valid_from < a.valid_to)
    and (a.daily_from is null or b.daily_from is null
         or (a.daily_from < b.daily_to and b.daily_from < a.daily_to))
{% endmacro %}
