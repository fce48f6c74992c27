"""A deterministic generator of realistic telemetry CSVs (used by the benchmark and the tests).

    python -m bench.generate 1000000 out.csv [--seed 1] [--end 2026-11-24] [--days 180]
    python -m bench.generate 1000000 out.csv --segment 2026-05-24 2026-05-25T05:00Z 6600 \\
        --segment 2026-05-25T05:00Z 2026-05-25T11:00Z 10800 --segment 2026-05-25T11:00Z 2026-11-25 982600

The same arguments always give the same bytes. With ``--segment START END ROWS`` (repeated, in time order) each
segment's rows spread evenly over its interval: the benchmark packs calls one every 2 s right at the 6-month
boundary, so that calls would age out between any two runs if the retention cutoff moved continuously.

The mix: 12 models, among them date-suffixed (`claude-3-5-haiku-20241022`), provider-prefixed (`openai/gpt-4.1`)
and one no price table knows; phases named in about 80% of notes; about 10% failures whose notes carry the error
text; notes with quoted commas.
"""

from __future__ import annotations

import argparse
import csv
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

HEADER = ["timestamp", "model", "prompt_tokens", "completion_tokens", "task_success", "task_type", "duration_ms",
          "notes"]

MODELS = [
    "claude-sonnet-4-5-20250929",
    "claude-3-5-haiku-20241022",
    "claude-opus-4-1-20250805",
    "claude-3-opus",
    "gpt-4o-2024-08-06",
    "gpt-4o-mini",
    "openai/gpt-4.1",
    "o3-mini",
    "gemini-2.5-flash",
    "gemini-1.5-flash",
    "mistral-large-latest",
    "acme-internal-llm-v2",  # no price: shows up as unpriced
]
TASK_TYPES = ["plan", "execute", "verify", "discuss", "quick", ""]
WORK = ["wrote tests", "refactored the loader, again", "reviewed \"diff\" of the COPY path", "CI setup",
        "docs, README and examples", "fixed flaky test"]
ERRORS = ["Tool call timed out after {n}s", "Rate limit exceeded (429), retry in {n}s",
          "Context window exceeded: {n} > 200000 tokens", "API error 529: overloaded"]


Segment = tuple[datetime, datetime, int]  # start, end, rows spread evenly from start to just before end


def _segment_moments(segments: list[Segment]) -> Iterator[datetime]:
    for start, end, count in segments:
        span = (end - start).total_seconds()
        if span <= 0 or count < 0:
            raise ValueError(f"segment {start} to {end} with {count} rows: need start < end and rows >= 0")
        for i in range(count):
            yield start + timedelta(seconds=int(span * i / count))


def rows(count: int, *, seed: int = 1, end: date | None = None, days: int = 180,
         segments: list[Segment] | None = None) -> Iterator[list[str]]:
    """`count` rows in time order, spread over the `days` days before `end` (default: yesterday), or over the
    `segments` (their rows must add up to `count`)."""
    rng = random.Random(seed)
    if segments is not None:
        if sum(rows for _, _, rows in segments) != count:
            raise ValueError(f"the segments hold {sum(r for _, _, r in segments)} rows, not {count}")
        moments = _segment_moments(segments)
    else:
        end = end or (datetime.now(UTC).date() - timedelta(days=1))
        start = datetime(end.year, end.month, end.day, tzinfo=UTC) - timedelta(days=days - 1)
        moments = (start + timedelta(seconds=days * 86400 * i // max(count, 1)) for i in range(count))
    for i, moment in enumerate(moments):
        ts = moment + timedelta(seconds=rng.randrange(0, 3))
        ok = rng.random() >= 0.10
        phase = rng.random()
        work = rng.choice(WORK)
        if phase < 0.6:
            note = f"Phase {rng.randint(1, 9)} {work}"
        elif phase < 0.8:
            note = f"phase {rng.randint(1, 9)}.{rng.randint(1, 4)}: {work}"
        else:
            note = work
        if not ok:
            note = f"{note}: {rng.choice(ERRORS).format(n=rng.randint(2, 300000))}"
        yield [
            ts.strftime("%Y-%m-%dT%H:%M:%SZ") if i % 7 else ts.strftime("%Y-%m-%d %H:%M:%S"),
            rng.choice(MODELS),
            str(rng.randint(200, 60000)),
            str(rng.randint(50, 8000)),
            ("true" if ok else "false") if i % 5 else ("1" if ok else "0"),
            rng.choice(TASK_TYPES),
            str(rng.randint(500, 300000)),
            note,
        ]


def write(path: Path, count: int, *, seed: int = 1, end: date | None = None, days: int = 180,
          segments: list[Segment] | None = None, calls_per_session: int = 0) -> Path:
    """The CSV of rows(); with ``calls_per_session``, a session_id column too, each session that many
    consecutive calls (as an agent writes them), named after the file."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        generated = rows(count, seed=seed, end=end, days=days, segments=segments)
        if not calls_per_session:
            writer.writerow(HEADER)
            writer.writerows(generated)
            return path
        writer.writerow([*HEADER, "session_id"])
        for i, row in enumerate(generated):
            writer.writerow([*row, f"{path.stem}-{i // calls_per_session:08d}"])
    return path


def _moment(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rows", type=int)
    parser.add_argument("path", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--end", type=date.fromisoformat, default=None, help="last day (default: yesterday)")
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--segment", nargs=3, action="append", metavar=("START", "END", "ROWS"),
                        help="ROWS spread evenly from START to END (ISO 8601, UTC if no offset); repeat, in order")
    args = parser.parse_args()
    segments = [(_moment(a), _moment(b), int(n)) for a, b, n in args.segment] if args.segment else None
    write(args.path, args.rows, seed=args.seed, end=args.end, days=args.days, segments=segments)


if __name__ == "__main__":
    main()
