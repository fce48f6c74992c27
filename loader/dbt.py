"""Running dbt in-process (dbtRunner) against the configured database.

The connection comes from the same URL as the loader's: we set the TELEMETRY_DB_* variables that
``loader/profiles/profiles.yml`` reads. dbtRunner calls in one process must not overlap, and ingests are
serialised by an advisory lock, so a lock here only guards threads of one process.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Sequence

from psycopg import conninfo

from loader.config import PROFILES_DIR, PROJECT_DIR
from loader.errors import DbtError

_LOCK = threading.Lock()


def _profile_env(url: str) -> dict[str, str]:
    params = conninfo.conninfo_to_dict(url)
    env = {
        "TELEMETRY_DB_HOST": str(params.get("host") or "localhost"),
        "TELEMETRY_DB_PORT": str(params.get("port") or "5432"),
        "TELEMETRY_DB_USER": str(params.get("user") or os.environ.get("PGUSER") or "postgres"),
        "TELEMETRY_DB_PASSWORD": str(params.get("password") or ""),
        "TELEMETRY_DB_NAME": str(params.get("dbname") or "postgres"),
        "TELEMETRY_DB_SSLMODE": str(params.get("sslmode") or "prefer"),
    }
    return env


def target_path(url: str) -> str:
    """One dbt target folder per database, so partial parsing state never mixes two databases."""
    params = conninfo.conninfo_to_dict(url)
    key = "|".join(str(params.get(k, "")) for k in ("host", "port", "dbname"))
    return str(PROJECT_DIR / "target" / hashlib.sha1(key.encode()).hexdigest()[:12])


def invoke(
    url: str,
    args: Sequence[str],
    *,
    dbt_vars: dict[str, object] | None = None,
    on_node: Callable[[str, str], None] | None = None,
    write_json: bool = True,
):
    """Run one dbt command against the PostgreSQL database at ``url``; see ``_invoke``."""
    return _invoke(_profile_env(url), target_path(url), args, dbt_vars=dbt_vars, on_node=on_node,
                   write_json=write_json)


def invoke_spark(
    profile_env: dict[str, str],
    args: Sequence[str],
    *,
    dbt_vars: dict[str, object] | None = None,
    on_node: Callable[[str, str], None] | None = None,
):
    """Run one dbt command on the profile's spark target (TELEMETRY_ENGINE=spark), in the Spark session the
    loader started in this process (loader.spark_session)."""
    key = profile_env["TELEMETRY_SPARK_WAREHOUSE"]
    path = str(PROJECT_DIR / "target" / ("spark-" + hashlib.sha1(key.encode()).hexdigest()[:12]))
    return _invoke(profile_env, path, [*args, "--target", "spark"], dbt_vars=dbt_vars, on_node=on_node)


def _invoke(
    profile_env: dict[str, str],
    target: str,
    args: Sequence[str],
    *,
    dbt_vars: dict[str, object] | None = None,
    on_node: Callable[[str, str], None] | None = None,
    write_json: bool = True,
):
    """Run one dbt command (e.g. ``["run", "--select", "llm_calls+"]``) and return dbt's result object.

    ``on_node(name, status)`` is called as each model, seed or test finishes (for progress output). Without
    ``write_json`` dbt writes no manifest.json and run_results.json (about 0.8 s of a small run: the manifest of
    the last run that wrote one stays, which is right while the project's files are unchanged).
    Raises DbtError with dbt's own messages when the command fails.
    """
    from dbt.cli.main import dbtRunner

    callbacks = []
    if on_node is not None:

        def _event(event) -> None:  # dbt's EventMsg
            if event.info.name == "NodeFinished":
                node = event.data.node_info
                on_node(node.node_name, node.node_status)

        callbacks.append(_event)

    full_args = [
        *args,
        "--project-dir", str(PROJECT_DIR),
        "--profiles-dir", str(PROFILES_DIR),
        "--target-path", target,
        "--log-path", str(PROJECT_DIR / "logs"),
        "--quiet",
        "--log-level", "none",  # dbt's messages reach the user through DbtError; logs/dbt.log keeps them all
        "--no-use-colors",
        "--no-send-anonymous-usage-stats",
        "--no-version-check",
    ]
    if dbt_vars:
        full_args += ["--vars", json.dumps(dbt_vars)]
    if not write_json:
        full_args.append("--no-write-json")
    with _LOCK:
        saved = {k: os.environ.get(k) for k in profile_env}
        os.environ.update(profile_env)
        try:
            result = dbtRunner(callbacks=callbacks).invoke(full_args)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    if not result.success:
        raise DbtError(f"dbt {' '.join(args)} failed: {_failure_text(result)}")
    return result


def _failure_text(result) -> str:
    if result.exception is not None:
        return str(result.exception)
    messages = []
    for node_result in getattr(result.result, "results", None) or []:
        if str(node_result.status) in ("error", "fail"):
            node = getattr(node_result, "node", None)  # a run-operation's result names no node
            messages.append(f"{node.name}: {node_result.message}" if node else str(node_result.message or ""))
    return "; ".join(m for m in messages if m) or "see logs/dbt.log"


def compiled_sql(url: str, model: str) -> str:
    """The SQL dbt would run for one model, compiled against this database."""
    result = invoke(url, ["compile", "--select", model])
    for node_result in result.result.results:
        if node_result.node.name == model:
            return node_result.node.compiled_code
    raise DbtError(f"dbt compile did not return {model}")
