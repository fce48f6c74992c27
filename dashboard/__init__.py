"""The web dashboard of llm-telemetry: `telemetry dashboard` serves it (see the README, "Dashboard")."""
