"""The benchmark of llm-telemetry (`pnpm bench`) and its data generator."""
