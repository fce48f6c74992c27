"""llm-telemetry: load coding-agent LLM usage CSVs into PostgreSQL and model them with dbt."""

from loader.errors import TelemetryError

__all__ = ["TelemetryError"]
