"""The loader-dbt contract: both sides name the same load statuses and relations, and the compact-date rule of
the pricing SQL is genai-prices' rule; and the loader never imports the dashboard."""

from __future__ import annotations

import ast
import re

import psycopg
from genai_prices.types import _normalize_compact_dated_ref
from helpers import PROJECT_DIR

from loader import contract, dbt


def _dbt_statuses() -> list[str]:
    text = (PROJECT_DIR / "macros" / "load_status.sql").read_text()
    listed = re.search(r"set statuses = \[([^\]]*)\]", text)
    assert listed, "macros/load_status.sql lists the statuses in `set statuses = [...]`"
    return re.findall(r"'([^']+)'", listed.group(1))


def _schema_statuses() -> list[str]:
    ddl = (PROJECT_DIR / "loader" / "sql" / "schema.sql").read_text()
    check = re.search(r"check \(status in \(([^)]*)\)\)", ddl)
    assert check, "loader/sql/schema.sql constrains load_audit.status"
    return re.findall(r"'([^']+)'", check.group(1))


def test_dbt_and_the_loader_name_the_same_load_statuses():
    assert _dbt_statuses() == [status.value for status in contract.LoadStatus]


def test_the_landing_table_accepts_exactly_the_load_statuses():
    assert _schema_statuses() == [status.value for status in contract.LoadStatus]


def test_dbt_and_the_loader_compare_the_same_call_values():
    text = (PROJECT_DIR / "macros" / "call_values.sql").read_text()
    listed = re.search(r"return\(\[([^\]]*)\]\)", text)
    assert listed and re.findall(r"'([^']+)'", listed.group(1)) == list(contract.CALL_VALUE_COLUMNS)


def test_models_never_spell_a_load_status_literally():
    for path in PROJECT_DIR.glob("models/**/*.sql"):
        text = path.read_text()
        for status in contract.LoadStatus:
            assert f"status = '{status.value}'" not in text, f"{path.name}: use load_status('{status.value}')"


def test_every_relation_python_names_in_the_model_schema_is_a_dbt_node():
    nodes = {p.stem for p in PROJECT_DIR.glob("models/**/*.sql")} | {p.stem for p in PROJECT_DIR.glob("seeds/*.csv")}
    named = [v for v in vars(contract).values() if isinstance(v, contract.Relation)]
    assert named
    for relation in named:
        if relation.schema == contract.MODEL_SCHEMA:
            assert relation.name in nodes, f"{relation} is not a model or seed of the dbt project"


NAMES = [
    "gpt-5.2-20251211", "claude-3-5-sonnet-20241022", "model-20240229", "model-20230229", "model-20241301",
    "model-20240431", "model-20240430:beta", "a-20250101-b-20250102", "model-19991231", "model-2024010",
    "model-202401011", "model20240101", "gemini-2.0-flash-20250205-preview", "x-21000101", "x-20000229",
    "x-21000229", "model-20241131", "model-20241231",
]


def test_the_compact_date_rule_is_genai_prices_rule(database_url):
    compiled = dbt.invoke(database_url, ["compile", "--inline", "select {{ compact_dates_rewritten('%s') }}"])
    expression = compiled.result.results[0].node.compiled_code
    with psycopg.connect(database_url) as conn:
        for name in NAMES:
            ours = conn.execute(expression, [name]).fetchone()[0]
            assert ours == _normalize_compact_dated_ref(name), name


def test_the_loader_never_imports_the_dashboard():
    """The arrows run one way, dashboard -> loader: `telemetry dashboard` comes to the CLI as an entry point."""
    imports = []
    for path in sorted((PROJECT_DIR / "loader").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            imports += [f"{path.name}: {name}" for name in names if name.split(".")[0] == "dashboard"]
    assert imports == []
    from importlib.metadata import entry_points

    from loader.cli import COMMAND_GROUP, build_parser

    assert [e.value for e in entry_points(group=COMMAND_GROUP)] == ["dashboard.command:register"]
    assert "dashboard" in build_parser().format_help()
