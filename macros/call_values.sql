{#- The values of a call that are not its key: two rows with one key (timestamp, session_id, prompt_name) whose
    values differ are a conflict (telemetry.call_conflicts). The loader names the same list in
    loader/contract.py (CALL_VALUE_COLUMNS); a test keeps them equal. -#}

{% macro call_value_columns() -%}
    {{ return(['model', 'input_tokens', 'output_tokens', 'cache_read_tokens', 'cache_write_tokens', 'success',
               'error_message', 'duration_ms', 'notes', 'cost_usd']) }}
{%- endmacro %}
