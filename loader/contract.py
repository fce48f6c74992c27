"""The loader's side of its contract with dbt: relation names, load statuses, and the loader's own state.

Python writes ``telemetry_raw`` (the landing rows, the load audit, the file checkpoints, the loader state); dbt
owns ``telemetry`` (the staging view, the typed rows, llm_calls, the marts). Every relation Python names is named
here, once, as a psycopg ``sql.Identifier``; SQL elsewhere is composed with ``sql.SQL(...).format(...)``.

A load moves through these statuses (``telemetry_raw.load_audit.status``)::

        loader: COPY + audit row + checkpoint, one transaction
                              |
                              v
                          [loaded] ---- crash before dbt finished ----> [aborted]
                              |            (the next run undoes its rows and checkpoint)
          dbt: llm_calls merge and this status change, one transaction (post-hook of llm_calls)
                              v
                         [modelled] --- crash before the marts were rebuilt: the next run rebuilds them
                              |
          loader: marts rebuilt, outcomes measured and recorded
                              v
                           [done]

dbt names the same statuses through the ``load_status()`` macro (macros/load_status.sql); a test fails when the
two lists disagree.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import psycopg
from psycopg import sql

RAW_SCHEMA = "telemetry_raw"
MODEL_SCHEMA = "telemetry"


class LoadStatus(StrEnum):
    LOADED = "loaded"
    MODELLED = "modelled"
    DONE = "done"
    ABORTED = "aborted"


class Relation(sql.Identifier):
    """A schema-qualified table or view: composes into SQL as a quoted identifier; str() is 'schema.name'."""

    def __init__(self, schema: str, name: str) -> None:
        super().__init__(schema, name)
        self.schema = schema
        self.name = name

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


# Written by the loader.
LOAD_AUDIT = Relation(RAW_SCHEMA, "load_audit")
USAGE_ROWS = Relation(RAW_SCHEMA, "usage_rows")
USAGE_ROWS_RECORD_NUMBER = Relation(RAW_SCHEMA, "usage_rows_record_number")
FILE_CHECKPOINTS = Relation(RAW_SCHEMA, "file_checkpoints")
LOADER_STATE = Relation(RAW_SCHEMA, "loader_state")

# Built by dbt, in schema MODEL_SCHEMA (the name is the dbt model's).
STAGING_VIEW = Relation(MODEL_SCHEMA, "stg_telemetry__usage_rows")
TYPED_ROWS = Relation(MODEL_SCHEMA, "int_usage_rows_typed")
LLM_CALLS = Relation(MODEL_SCHEMA, "llm_calls")
CALL_CONFLICTS = Relation(MODEL_SCHEMA, "call_conflicts")
REJECTED_ROWS = Relation(MODEL_SCHEMA, "rejected_rows")
PRICE_SEED = Relation(MODEL_SCHEMA, "model_prices")
DAILY_USAGE = Relation(MODEL_SCHEMA, "daily_usage")
DAILY_USAGE_ROLLUPS = Relation(MODEL_SCHEMA, "daily_usage_rollups")
ERROR_SUMMARY = Relation(MODEL_SCHEMA, "error_summary")
FAILED_CALLS = Relation(MODEL_SCHEMA, "failed_calls")
COST_BY_SESSION = Relation(MODEL_SCHEMA, "cost_by_session")

#: What retention deletes itself, without a dbt run, and the column that dates a row. Each of these relations
#: holds rows that belong to one call or to one UTC day, and the cutoff is a midnight UTC, so a row dated before
#: it is gone whole and no other row changes: deleting is all that keeps them exact. (The models' own post-hooks
#: do the same when dbt runs.) Sessions are the exception: one can span the cutoff (loader.retention).
PRUNED_BY_TIME = ((LLM_CALLS, '"timestamp"'), (FAILED_CALLS, '"timestamp"'), (CALL_CONFLICTS, '"timestamp"'))
PRUNED_BY_DAY = ((DAILY_USAGE, "call_date"), (DAILY_USAGE_ROLLUPS, "call_date"), (ERROR_SUMMARY, "call_date"))

#: Relations earlier versions built and this one does not: dropped after a successful dbt run.
#: (0.1.0's int_llm_calls__daily is daily_usage now.)
RETIRED = (Relation(MODEL_SCHEMA, "int_llm_calls__daily"),)

#: The values of a call besides its key; rows with one key and different values are conflicts. The dbt side is
#: the call_value_columns() macro (macros/call_values.sql); a test keeps the two equal.
CALL_VALUE_COLUMNS = ("model", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "success",
                      "error_message", "duration_ms", "notes", "cost_usd")

#: The role dbt grants SELECT on the marts to (dbt_project.yml); the loader creates it when missing.
READER_ROLE = "telemetry_reader"


def relation_exists(conn: psycopg.Connection, relation: Relation) -> bool:
    """Whether a table or view exists."""
    return conn.execute("select to_regclass(%s) is not null", [str(relation)]).fetchone()[0]


def is_table(conn: psycopg.Connection, relation: Relation) -> bool:
    """Whether a table (not a view) exists: an earlier version may have built as a view what is a table now."""
    return conn.execute("select exists (select 1 from pg_class where oid = to_regclass(%s) and relkind = 'r')",
                        [str(relation)]).fetchone()[0]


def get_state(conn: psycopg.Connection, key: str) -> str | None:
    """A value the loader keeps about itself in telemetry_raw.loader_state (None when unset or no table yet)."""
    if not relation_exists(conn, LOADER_STATE):
        return None
    row = conn.execute(sql.SQL("select value from {} where key = %s").format(LOADER_STATE), [key]).fetchone()
    return row[0] if row else None


def set_state(conn: psycopg.Connection, key: str, value: str) -> None:
    conn.execute(
        sql.SQL("insert into {} (key, value) values (%s, %s) on conflict (key) do update set value = excluded.value")
        .format(LOADER_STATE),
        [key, value],
    )


def dbt_vars(cutoff: datetime | None, *, all_loads: bool = False) -> dict[str, object]:
    """The variables of every dbt run: the retention cutoff (so that dbt and the loader's counts use the very
    same instant), and whether llm_calls is rebuilt from every load rather than from the loads not yet modelled.
    """
    return {"retention_cutoff": cutoff.isoformat() if cutoff else "-infinity", "all_loads": all_loads}
