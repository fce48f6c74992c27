{% macro changed_days() -%}
    {#- The UTC days an incremental-by-day model recomputes, as a subquery of one column, call_date: the days of
        the calls of the loads just modelled, and the day of the retention cutoff (a cutoff that is not a
        midnight, as when dbt is run by hand, leaves part of that day). The days before the cutoff are deleted,
        not recomputed: by each model's post-hook, and by the loader's pruning (loader/retention.py). -#}
    (
        select distinct ("timestamp" at time zone 'UTC')::date as call_date
        from {{ ref('llm_calls') }}
        where load_id in {{ loads_in_status('modelled') }}
        union
        select ({{ retention_cutoff() }} at time zone 'UTC')::date
    )
{%- endmacro %}

{% macro before_cutoff_day() -%}
    {#- The post-hook of a model incremental by day: delete the days that lie wholly before the retention cutoff. -#}
    delete from {{ this }} where call_date < ({{ retention_cutoff() }} at time zone 'UTC')::date
{%- endmacro %}
