"""The benchmark's CSV files, laid out relative to now, and what loading them must give.

The files come from ``bench/generate.py``, in three segments of time:

- one day of calls (at the file's usual density) before the retention cutoff the CLI reports when the benchmark
  starts (``telemetry prune --dry-run --json``, default window): a fresh load expires them, and a database that
  holds them (loaded with a longer window) is one on which a day of calls has just aged out;
- from a minute before the 6-month boundary (now minus 6 calendar months, to the second), calls packed one every
  ``HEAD_SPACING`` seconds for up to ``HEAD_SECONDS``: if the cutoff moved with the clock, a few would age out
  between any two runs some seconds apart, for as long as the benchmark lasts;
- the other rows, evenly up to an hour ago; the appended rows fill that last hour.

A ``DataFile`` knows, for any cutoff, how many of its rows are older (``expired`` on a fresh load) and how many
distinct calls are older (pruned once they age out), so every count the CLI prints can be checked.
"""

from __future__ import annotations

import bisect
import csv
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.generate import Segment
from bench.measure import expect

MAIN_SEED, APPEND_SEED = 1, 2
RETENTION_MONTHS = 6  # the default window
HEAD_SPACING = 2.0  # seconds between two calls at the 6-month boundary
HEAD_SECONDS = 6 * 3600  # how long the dense head lasts: longer than the benchmark
LEAD_SECONDS = 60  # the dense head starts this much before the 6-month boundary
HORIZON = timedelta(days=1)  # the times of rows older than the head's end + this are kept (for the counts)


def months_ago(now: datetime, months: int) -> datetime:
    """``months`` calendar months before ``now``, same time of day (the 31st becomes the month's last day)."""
    year, month = divmod(now.year * 12 + now.month - 1 - months, 12)
    for day in range(now.day, 0, -1):
        try:
            return now.replace(year=year, month=month + 1, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


@dataclass
class Layout:
    """Where a file's rows sit in time (the segments of generate.write)."""

    seed: int
    segments: list[Segment]

    def describe(self) -> str:
        parts = []
        for start, end, rows in self.segments:
            spacing = (end - start).total_seconds() / rows if rows else 0
            every = f"one every {spacing:.0f} s" if spacing < 600 else f"one every {spacing / 60:.0f} min"
            parts.append(f"{rows:,} from {start:%Y-%m-%d %H:%M:%S} ({every})")
        return f"seed {self.seed}; rows in time order: " + ", ".join(parts) + \
            f", to {self.segments[-1][1]:%Y-%m-%d %H:%M:%S} UTC"


def layouts(cutoff: datetime, now: datetime, rows: int, append_rows: int) -> tuple[Layout, Layout]:
    """The main file (the small one: the same with fewer rows) and the appended rows, for the cutoff the CLI
    reported at ``now``."""
    second = timedelta(seconds=1)
    edge = months_ago(now, RETENTION_MONTHS).replace(microsecond=0) - LEAD_SECONDS * second
    start = min(cutoff.replace(microsecond=0), edge) - timedelta(days=1)
    head_rows = min(rows // 2, int(HEAD_SECONDS / HEAD_SPACING))
    head_end = edge + head_rows * HEAD_SPACING * second
    hour_ago = (now - timedelta(hours=1)).replace(microsecond=0)
    rest = rows - head_rows
    early, late = (edge - start).total_seconds(), (hour_ago - head_end).total_seconds()
    before = round(rest * early / (early + late))
    main = Layout(MAIN_SEED, [(start, edge, before), (edge, head_end, head_rows), (head_end, hour_ago, rest - before)])
    extra = Layout(APPEND_SEED, [(hour_ago + 10 * second, now.replace(microsecond=0) - 5 * second, append_rows)])
    return main, extra


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text.strip())
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _loader_key(row: list[str], columns: dict[str, int]) -> tuple:
    """What makes two rows the same call for the loader (README: key (timestamp, session_id, prompt_name),
    session_id = md5 of the row's normalised values when the file has no session_id column)."""
    success = row[columns["task_success"]].strip().lower()
    return (
        _moment(row[columns["timestamp"]]),
        row[columns["model"]].strip(),
        int(row[columns["prompt_tokens"]]),
        int(row[columns["completion_tokens"]]),
        None if not success else success in ("true", "1", "yes"),
        row[columns["task_type"]].strip() or "(none)",
        int(row[columns["duration_ms"]]),
        row[columns["notes"]].replace("\r\n", "\n"),
    )


@dataclass
class DataFile:
    """A generated CSV and what loading it must give."""

    path: Path
    layout: Layout
    rows: int
    size: int
    keys: set[int] = field(repr=False)  # hashes of the loader's keys
    horizon: float  # epoch seconds; the two lists below hold the times before it
    row_times: list[float] = field(repr=False)  # sorted
    key_times: list[float] = field(repr=False)  # sorted, one per distinct key
    naive_distinct: int | None = None  # distinct keys of bench/naive.py, when asked for

    @property
    def distinct(self) -> int:
        return len(self.keys)

    def _before(self, times: list[float], cutoff: datetime) -> int:
        moment = cutoff.timestamp()
        expect(moment < self.horizon, f"{self.path.name}: the cutoff {cutoff} has moved past the rows whose times "
               "were kept; the benchmark outlasted its data's layout")
        return bisect.bisect_left(times, moment)

    def rows_before(self, cutoff: datetime | None) -> int:
        """Rows older than the cutoff: what a fresh load counts as expired."""
        return 0 if cutoff is None else self._before(self.row_times, cutoff)

    def calls_before(self, cutoff: datetime | None) -> int:
        """Distinct calls older than the cutoff: what retention removes."""
        return 0 if cutoff is None else self._before(self.key_times, cutoff)

    def spec(self) -> dict:
        """What the report says about the file."""
        return {"rows": self.rows, "bytes": self.size, "distinct": self.distinct, "layout": self.layout.describe()}


def generate(path: Path, rows: int, layout: Layout, *, naive: bool = False) -> DataFile:
    """Write the file, then read it back the way the loader (and, with ``naive``, bench/naive.py) keys it."""
    from bench import naive as naive_loader
    from bench.generate import write

    write(path, rows, seed=layout.seed, segments=layout.segments)
    horizon = (layout.segments[min(1, len(layout.segments) - 1)][1] + HORIZON).timestamp()
    keys: set[int] = set()
    naive_keys: set[int] = set()
    row_times: list[float] = []
    key_times: list[float] = []
    count = 0
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        columns = {name: i for i, name in enumerate(header)}
        for row in reader:
            if not row:
                continue
            count += 1
            key = _loader_key(row, columns)
            digest = hash(key)
            moment = key[0].timestamp()
            if moment < horizon:
                row_times.append(moment)
                if digest not in keys:
                    key_times.append(moment)
            keys.add(digest)
            if naive:
                naive_keys.add(hash(naive_loader.key(naive_loader.parse_row(dict(zip(header, row, strict=True))))))
    expect(count == rows, f"{path}: generated {count} records, asked for {rows}")
    return DataFile(path, layout, rows, path.stat().st_size, keys, horizon, sorted(row_times), sorted(key_times),
                    len(naive_keys) if naive else None)


def append_records(target: Path, extra: Path) -> None:
    """Append the records of ``extra`` (without its header line) to ``target``."""
    data = extra.read_bytes()
    body = data[data.index(b"\n") + 1:]
    with target.open("rb+") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() and (handle.seek(-1, os.SEEK_END), handle.read(1))[1] != b"\n":
            handle.write(b"\n")
        handle.write(body)
        handle.flush()
        os.fsync(handle.fileno())
