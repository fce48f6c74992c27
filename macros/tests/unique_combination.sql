{% test unique_combination(model, columns) %}
{#- No two rows share the same values in `columns` (NULLs compare equal here, so a NULL key is caught too). -#}
select {{ columns | join(', ') }}, count(*) as rows_with_this_key
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
