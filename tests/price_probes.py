"""Probe requests for checking the SQL price seed against ``genai_prices.calc_price``.

Each probe is ``(model_ref, iso_timestamp_utc, input_tokens, output_tokens)``.  The test computes the
expected price itself with ``calc_price`` (``tests/reference.py``); no expected values live here.

``calc_price`` without a provider strips no ``provider/`` prefix. Our rule (README, "How the cost is
estimated") passes a prefix that names a known provider as ``provider_id`` (``openai/gpt-4.1`` is priced
as ``calc_price(..., "gpt-4.1", provider_id="openai")``) and drops any other prefix. A name genai-prices
does not resolve (``llama-3.3-70b-versatile``) must stay unpriced in SQL too.
"""

PRICE_PROBES: list[tuple[str, str, int, int]] = [
    # Models used by the example telemetry files.
    ("claude-3-opus", "2025-03-01T12:00:00+00:00", 1200, 350),
    ("gemini-1.5-flash", "2025-03-01T12:00:00+00:00", 5000, 800),
    ("claude-3-sonnet", "2025-03-01T12:00:00+00:00", 2048, 512),
    ("claude-opus-4-1-20250805", "2026-11-03T10:15:00+00:00", 24765, 4874),
    ("claude-sonnet-4-5-20250929", "2026-11-03T08:43:02+00:00", 6744, 4614),
    ("claude-3-5-haiku-20241022", "2026-11-03T09:32:07+00:00", 38621, 4896),
    # Plain names.
    ("gpt-4o", "2025-01-15T08:30:00+00:00", 1000, 250),
    ("gpt-4.1", "2025-07-01T00:00:00+00:00", 3000, 1000),
    ("gpt-4o-mini", "2025-02-01T10:00:00+00:00", 15000, 2000),
    ("claude-3-5-haiku", "2025-04-01T09:00:00+00:00", 800, 120),
    ("gemini-2.5-flash", "2025-09-01T18:00:00+00:00", 10000, 3000),
    ("mistral-large-latest", "2025-05-05T05:05:05+00:00", 700, 300),
    ("command-r", "2025-01-01T00:00:00+00:00", 1500, 500),
    ("grok-3", "2025-06-01T12:00:00+00:00", 900, 900),
    ("o3-mini", "2025-03-10T11:00:00+00:00", 4000, 6000),
    ("kimi-k2", "2025-10-01T00:00:00+00:00", 2500, 700),
    # Date-suffixed names (dashed and compact dates; gpt-5.2-20251211 needs the compact-date retry).
    ("claude-3-5-sonnet-20241022", "2025-02-20T14:00:00+00:00", 1500, 400),
    ("gpt-4o-2024-08-06", "2024-11-11T11:11:11+00:00", 2500, 600),
    ("claude-sonnet-4-20250514", "2025-08-01T00:00:00+00:00", 12000, 1500),
    ("claude-3-opus-20240229", "2024-06-01T00:00:00+00:00", 600, 200),
    ("gpt-5.2-20251211", "2026-01-10T10:00:00+00:00", 5000, 1000),
    ("gemini-1.5-flash-002", "2025-01-05T07:00:00+00:00", 3000, 300),
    # Provider-prefixed names.
    ("openai/gpt-4.1", "2025-07-01T00:00:00+00:00", 3000, 1000),
    ("anthropic/claude-3-5-sonnet-20241022", "2025-02-20T14:00:00+00:00", 1500, 400),
    ("google/gemini-2.5-pro", "2025-09-01T00:00:00+00:00", 1000, 1000),
    ("x-ai/grok-4.5-20260101", "2026-06-01T12:00:00+00:00", 1000, 500),
    # Upper/mixed case.
    ("GPT-4O", "2025-01-15T08:30:00+00:00", 1000, 250),
    ("Claude-3-Opus", "2025-03-01T12:00:00+00:00", 1200, 350),
    ("GEMINI-1.5-FLASH", "2025-03-01T12:00:00+00:00", 5000, 800),
    ("OpenAI/GPT-4.1", "2025-07-01T00:00:00+00:00", 3000, 1000),
    # Names several providers list (genai-prices picks the first provider whose model_match fits).
    ("grok-4.5", "2026-06-01T12:00:00+00:00", 2000, 1000),
    ("claude-3-7-sonnet", "2025-05-01T00:00:00+00:00", 3000, 800),
    ("gpt-oss-120b", "2025-10-01T00:00:00+00:00", 8000, 2000),
    ("llama-3.3-70b-versatile", "2025-05-01T00:00:00+00:00", 1000, 1000),
    # Dated price changes: one date on each side of the change.
    ("o3", "2025-06-09T23:59:59+00:00", 10000, 2000),
    ("o3", "2025-06-10T00:00:00+00:00", 10000, 2000),
    ("ministral-8b-latest", "2025-11-30T12:00:00+00:00", 20000, 4000),
    ("ministral-8b-latest", "2025-12-03T12:00:00+00:00", 20000, 4000),
    ("mistral-small-latest", "2026-03-15T12:00:00+00:00", 20000, 4000),
    ("mistral-small-latest", "2026-03-16T00:00:01+00:00", 20000, 4000),
    ("grok-4.20", "2026-04-29T12:00:00+00:00", 5000, 1000),
    ("grok-4.20", "2026-05-01T12:00:00+00:00", 5000, 1000),
    ("gpt-5.6-sol", "2026-08-20T12:00:00+00:00", 5000, 1000),
    ("gpt-5.6-sol", "2026-08-21T12:00:00+00:00", 5000, 1000),
    # Long-context tier: the tier applies before 2026-03-13 and not after.
    ("claude-opus-4-6", "2026-03-12T12:00:00+00:00", 250000, 1000),
    ("claude-opus-4-6", "2026-03-13T12:00:00+00:00", 250000, 1000),
    ("gemini-1.5-flash", "2025-03-01T12:00:00+00:00", 200000, 1000),
    # Time-of-day (DeepSeek off-peak) pricing, UTC.
    ("deepseek-chat", "2025-05-01T03:00:00+00:00", 10000, 2000),
    ("deepseek-chat", "2025-05-01T20:00:00+00:00", 10000, 2000),
]
