{% macro changed_days() -%}
    {#- The UTC days an incremental-by-day model recomputes, as a subquery of one column, call_date: the days of
        the calls of the loads just modelled, and the day of the retention cutoff (a cutoff that is not a
        midnight, as when dbt is run by hand, leaves part of that day). The days before the cutoff are deleted,
        not recomputed: by each model's post-hook, and by the loader's pruning (loader/retention.py). -#}
    (
        select distinct {{ utc_date('timestamp') }} as call_date
        from {{ ref('llm_calls') }}
        where load_id in {{ loads_in_status('modelled') }}
        union
        select {{ utc_date(retention_cutoff()) }}
    )
{%- endmacro %}

{% macro before_cutoff_day() -%}
    {#- The post-hook of a model incremental by day: delete the days that lie wholly before the retention cutoff
        (nothing on Spark, where these marts are tables rebuilt from llm_calls: derived_materialization()). -#}
    {{ adapter.dispatch('before_cutoff_day', 'llm_telemetry')() }}
{%- endmacro %}
{% macro default__before_cutoff_day() -%}
    delete from {{ this }} where call_date < {{ utc_date(retention_cutoff()) }}
{%- endmacro %}
{% macro spark__before_cutoff_day() -%}
{%- endmacro %}
