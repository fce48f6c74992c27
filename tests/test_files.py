"""How files are read over time: writers in the middle of a line, in-place edits, files that are not regular files,
bounded memory, and the one-line messages for paths that cannot be read.

The scanner tests at the top need no database; the rest run the real loader on a real PostgreSQL.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from helpers import CANONICAL_HEADER, PROJECT_DIR, csv_text
from hostile_files import q, row

from loader import csv_scanner
from loader.checkpoints import HEAD_BYTES, RACY_SECONDS, READ_DESCRIPTIONS, ReadPlan, plan_read, save_checkpoint
from loader.csv_header import read_header
from loader.csv_scanner import MAX_RECORD_BYTES, ReadPosition, count_line_endings, scan_complete_records
from loader.errors import TelemetryError
from loader.landing import copy_records
from loader.progress import silent
from loader.schema import ensure_landing_tables
from loader.sources import resolve_paths

# --- the record scanner agrees with Python's csv module ---------------------------------------------------------

_PIECES = [b"a", b",", b'"', b"\n", b"\r", b"\r\n", b" ", b'""', b',"', b'"\n', b'x"y', b"\xff", b"\x00"]


def _csv_records(data: bytes, cr_ends_lines: bool) -> list[tuple[int, list[str] | None]]:
    """(first line, fields or None for a CSV error) of each record, as Python's csv module reads the bytes.

    Python's csv module ends a record at any line ending; in a file whose lines end in LF a bare CR is data
    instead, which is what the module reads when such CRs are some other character (\x01, not in _PIECES).
    """
    if not cr_ends_lines:
        data = re.sub(rb"\r(?!\n)", b"\x01", data)
    reader = csv.reader(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="surrogateescape", newline=""),
                        strict=True)
    records, line = [], 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return records
        except csv.Error:
            fields = None
        if fields is not None and not cr_ends_lines:
            fields = [f.replace("\x01", "\r") for f in fields]
        if fields != []:
            records.append((line, fields))
        line = reader.line_num + 1


def _scanned_records(data: bytes, cr_ends_lines: bool) -> tuple[list[tuple[int, list[str] | None]], int]:
    position = ReadPosition(0, 0)
    records = []
    for raw, lines in csv_scanner.split_records(io.BytesIO(data), position, cr_ends_lines=cr_ends_lines):
        fields, problem = csv_scanner.parse_record(raw) if raw is not None else (None, "too long")
        if problem is not None or fields:
            records.append((position.lines + 1, None if problem else fields))
        position.lines += lines
    return records, position.unfinished


@pytest.mark.parametrize("cr_ends_lines", [True, False], ids=["cr-file", "lf-file"])
@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 20])
def test_the_scanner_cuts_records_where_pythons_csv_module_does(monkeypatch, chunk, cr_ends_lines):
    monkeypatch.setattr(csv_scanner, "_CHUNK", chunk)
    rng = random.Random(chunk)
    for _ in range(1500):
        data = b"".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 30))) + b"\n"
        expected = _csv_records(data, cr_ends_lines)
        got, unfinished = _scanned_records(data, cr_ends_lines)
        if unfinished:  # the data ends inside a quoted field: csv reports an error, the scanner waits for more
            assert expected and expected[-1][1] is None, data
            expected = expected[:-1]
        assert got == expected, data


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_records_over_the_limit_are_dropped_whole_whatever_the_chunk_size(monkeypatch, chunk):
    rng = random.Random(chunk)
    for _ in range(1500):
        data = b"".join(rng.choice([*_PIECES, b"bbbbbbbbb"]) for _ in range(rng.randint(0, 50)))
        monkeypatch.setattr(csv_scanner, "MAX_RECORD_BYTES", 1 << 30)
        monkeypatch.setattr(csv_scanner, "_CHUNK", 1 << 20)
        whole = list(csv_scanner.split_records(io.BytesIO(data), ReadPosition(0, 0)))
        limit = rng.randint(1, 12)
        monkeypatch.setattr(csv_scanner, "MAX_RECORD_BYTES", limit)
        monkeypatch.setattr(csv_scanner, "_CHUNK", chunk)
        bounded = list(csv_scanner.split_records(io.BytesIO(data), ReadPosition(0, 0)))
        assert bounded == [(raw if raw is not None and len(raw) <= limit else None, lines) for raw, lines in whole]


def test_the_last_complete_record_is_found_in_any_chunking(monkeypatch):
    rng = random.Random(5)
    for chunk in (1, 2, 5, 1 << 20):
        monkeypatch.setattr(csv_scanner, "_CHUNK", chunk)
        for _ in range(800):
            data = b"".join(rng.choice(_PIECES[:10]) for _ in range(rng.randint(0, 25)))
            cr_file = rng.random() < 0.3
            scan = scan_complete_records(io.BytesIO(data), 0, len(data), cr_line_endings=cr_file)
            # Reference: the longest prefix that ends with a line ending and leaves no quoted field open.
            best = 0
            for k in range(1, len(data) + 1):
                last = data[k - 1 : k]
                ends_line = last == b"\n" or last == b"\r" and cr_file
                if ends_line and not _scanned_records(data[:k], cr_file)[1]:
                    best = k
            lines = count_line_endings(data, 0, best, cr_ends_lines=cr_file)
            assert (scan.end, scan.lines) == (best, lines), (data, cr_file)
            assert scan.has_records == bool(data[:best].strip(b"\r\n")), data


# --- a database with the landing tables, without dbt ------------------------------------------------------------


@pytest.fixture
def conn(database_url):
    with psycopg.connect(database_url, autocommit=True) as connection:
        ensure_landing_tables(connection)
        yield connection


def _load(conn, path: Path) -> ReadPlan:
    """Plan, copy and checkpoint one file like an ingest does, without dbt."""
    header = read_header(path)
    plan = plan_read(conn, header)
    if not plan.unchanged:
        with conn.transaction():
            _, clean_end = copy_records(conn, header, plan, 1, silent)
            save_checkpoint(conn, plan, plan.position, clean_end)
    return plan


def _plan(conn, path: Path) -> ReadPlan:
    return plan_read(conn, read_header(path))


def _bytes_read_by(action) -> tuple[object, int]:
    """What ``action()`` returns and how many bytes this process read meanwhile (Linux /proc/self/io rchar)."""
    def rchar() -> int:
        return int(Path("/proc/self/io").read_text().split("rchar:")[1].split()[0])
    before = rchar()
    result = action()
    return result, rchar() - before


def _backdate(path: Path, seconds: float = 3600) -> None:
    """Set the file's mtime in the past, as if its writer had stalled that long."""
    when = time.time() - seconds
    os.utime(path, (when, when))


# --- writers: a record is read once its line ending is written, never before -------------------------------------

_WRITER = r"""
import sys
path, first, rest = sys.argv[1:4]
with open(path, "ab", buffering=0) as handle:
    handle.write(first.encode())
    print("stalled", flush=True)
    sys.stdin.readline()
    handle.write(rest.encode())
"""


def test_a_writer_stalled_in_the_middle_of_a_line_has_the_call_loaded_once_and_whole(telemetry):
    path = telemetry.write("usage.csv", csv_text(row(1), row(2)))
    line = row(3, notes="Phase 2 notes that a buffered writer had only half written")
    cut = line.index("only")  # the truncated line would look like a valid call
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), line[:cut], line[cut:] + "\n"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "stalled\n"
        _backdate(path)  # stalled for an hour: longer than any grace period
        first = telemetry.ingest(path)
        assert (first.total("rows_read"), first.total("inserted"), first.total("rejected")) == (2, 2, 0)
        assert telemetry.count("telemetry.llm_calls") == 2
        with psycopg.connect(telemetry.url) as conn:
            plan = _plan(conn, path)
        assert (plan.reason, plan.pending_line, plan.pending_bytes) == ("unchanged", 4, cut)
        assert plan.pending_notice == (f"{path}: line 4 has no line ending yet; it is loaded once the writer "
                                       "finishes it (if the file is complete, end that line with a newline)")
        assert telemetry.ingest(path).total("rows_read") == 0  # still unfinished: still nothing
    finally:
        writer.communicate("go\n", timeout=60)
    assert writer.returncode == 0
    second = telemetry.ingest(path)
    load = second.loads[0]
    assert (load.read, load.rows_read, load.inserted, load.duplicates, load.rejected) == ("grown", 1, 1, 0, 0)
    assert telemetry.query("select source_line_number, notes from telemetry.llm_calls where notes like '%buffered%'"
                           ) == [(4, "Phase 2 notes that a buffered writer had only half written")]
    assert telemetry.count("telemetry.llm_calls") == 3


def test_no_interleaving_of_a_writer_and_the_loader_counts_a_call_twice_or_keeps_a_truncated_one(telemetry):
    """The writer flushes at awkward places (mid-notes, mid-timestamp, between CR and LF, inside quoted notes
    after their line break); the loader runs after every flush. Every call ends up stored exactly once."""
    lines = [row(10), row(11, notes="Phase 3 plain notes"), row(12, notes=q("Phase 4 two lines:\nsecond, line")),
             row(13, notes="Phase 5 last")]
    data = (CANONICAL_HEADER + "\r\n" + "".join(line + "\r\n" for line in lines)).encode()
    marks = [data.index(b"plain") + 2, data.index(lines[2][:25].encode()) + 10, data.index(b"second") + 1,
             data.index(b"last") + 4, data.index(b"last") + 5, len(data)]  # the last but one falls between CR and LF
    path = telemetry.tmp_path / "usage.csv"
    previous, read, inserted = 0, 0, 0
    for mark in marks:
        with path.open("ab") as handle:
            handle.write(data[previous:mark])
        previous = mark
        _backdate(path)
        summary = telemetry.ingest(path)
        read, inserted = read + summary.total("rows_read"), inserted + summary.total("inserted")
        assert summary.total("rejected") == summary.total("duplicates") == 0
        assert telemetry.count("telemetry.llm_calls") == inserted
    assert (read, inserted) == (4, 4)
    assert telemetry.query("select source_line_number, notes from telemetry.llm_calls order by 1") == [
        (2, "Phase 1 row 10"), (3, "Phase 3 plain notes"), (4, "Phase 4 two lines:\nsecond, line"),
        (6, "Phase 5 last")]


def test_a_buffered_writer_thread_racing_the_loader_stores_every_call_once(telemetry):
    """A real writer thread with a small buffer (it flushes mid-line) while ingests run back to back."""
    import threading

    path = telemetry.write("usage.csv", CANONICAL_HEADER + "\n")
    calls = [row(100 + i, notes=f"Phase {i % 7} call {i} " + "z" * (i * 37 % 300)) for i in range(120)]
    done = threading.Event()

    def write() -> None:
        with path.open("ab", buffering=64) as handle:  # flushes whenever 64 bytes are buffered: mid-line
            for call in calls:
                handle.write(call.encode() + b"\n")
                time.sleep(0.05)
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    read = inserted = 0
    while True:
        finished = done.is_set()
        summary = telemetry.ingest(path)
        read, inserted = read + summary.total("rows_read"), inserted + summary.total("inserted")
        assert summary.total("rejected") == summary.total("duplicates") == 0, summary.as_dict()
        if finished:
            break
    writer.join()
    assert (read, inserted, telemetry.count("telemetry.llm_calls")) == (120, 120, 120)
    stored = telemetry.query("select notes from telemetry.llm_calls order by source_line_number")
    assert [n for (n,) in stored] == [c.split(",")[-1] for c in calls]


def test_an_unfinished_quoted_field_at_the_end_waits_like_an_unfinished_line(conn, tmp_path):
    path = tmp_path / "usage.csv"
    path.write_bytes(csv_text(row(1), row(2)).encode() + row(3, notes='"Phase 2 first line\nsecond').encode()
                     + b"\n")
    plan = _load(conn, path)
    assert (plan.reason, plan.position.records, plan.pending_line, plan.pending_open_quote) == (
        "new file", 2, 4, True)
    assert plan.pending_notice == (
        f"{path}: the record that starts on line 4 has not ended yet (a quoted field in it is still open); it is "
        "loaded once the writer finishes it (if the file is complete, close the quote)")
    with path.open("ab") as handle:
        handle.write(b'third"\n')
    plan = _load(conn, path)
    assert (plan.reason, plan.start, plan.position.records, plan.position.lines, plan.pending_bytes) == (
        "grown", len(csv_text(row(1), row(2)).encode()), 3, 6, 0)


def test_a_last_line_that_never_gets_a_newline_is_announced_every_run_and_loads_once_ended(conn, tmp_path):
    path = tmp_path / "usage.csv"
    path.write_bytes(csv_text(row(1)).encode() + row(2).encode())
    _backdate(path, 86400 * 30)
    first = _load(conn, path)
    assert (first.reason, first.end, first.pending_line) == ("new file", len(csv_text(row(1)).encode()), 3)
    again = _plan(conn, path)
    assert (again.reason, again.pending_line, again.pending_bytes) == ("unchanged", 3, len(row(2)))
    with path.open("ab") as handle:
        handle.write(b"\n")
    ended = _load(conn, path)
    assert (ended.reason, ended.position.records, ended.pending_bytes, ended.pending_notice) == ("grown", 2, 0, None)


def test_a_crlf_writer_between_its_cr_and_lf_is_waited_for(conn, tmp_path):
    path = tmp_path / "usage.csv"
    path.write_bytes(csv_text(row(1), row(2)).replace("\n", "\r\n").encode()[:-1])  # the final LF is not there
    plan = _load(conn, path)
    assert (plan.position.records, plan.position.lines, plan.pending_line) == (1, 2, 3)
    with path.open("ab") as handle:
        handle.write(b"\n" + row(3).encode() + b"\r\n")
    plan = _load(conn, path)
    assert (plan.reason, plan.position.records, plan.position.lines) == ("grown", 3, 4)
    lines = [r[0] for r in conn.execute("select line_number from telemetry_raw.usage_rows order by 1")]
    assert lines == [2, 3, 4]


def test_a_header_without_rows_is_no_rows_yet_not_unchanged(conn, tmp_path):
    path = tmp_path / "usage.csv"
    path.write_text(CANONICAL_HEADER + "\n")
    plan = _plan(conn, path)
    assert (plan.unchanged, plan.reason, plan.pending_notice) == (True, "no rows yet", None)
    assert READ_DESCRIPTIONS[plan.reason] == "a header and no rows yet, nothing read"
    path.write_text(CANONICAL_HEADER + "\n\n" + row(1)[:20])
    plan = _plan(conn, path)
    assert (plan.reason, plan.pending_line, plan.pending_bytes) == ("no rows yet", 3, 20)


# --- in-place edits ------------------------------------------------------------------------------------------


def test_an_in_place_edit_after_the_first_64_kib_that_keeps_size_and_mtime_is_read(telemetry):
    rows = [row(i, notes=f"Phase 1 call {i:04d}") for i in range(2000)]
    path = telemetry.write("usage.csv", csv_text(*rows))
    assert path.stat().st_size > 2 * HEAD_BYTES
    telemetry.ingest(path)
    before = path.stat()
    text = path.read_bytes()
    at = text.rindex(b",100,")  # the last call's prompt_tokens
    with path.open("r+b") as handle:
        handle.seek(at)
        handle.write(b",999,")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # as an editor that keeps the mtime would
    assert path.stat().st_size == before.st_size
    load = telemetry.ingest(path).loads[0]
    assert (load.read, load.rows_read, load.inserted, load.duplicates) == ("changed", 2000, 1, 1999)
    assert telemetry.query("select input_tokens from telemetry.llm_calls where notes = 'Phase 1 call 1999' "
                           "order by 1") == [(100,), (999,)]


def test_a_file_replaced_by_a_longer_copy_of_itself_reads_only_the_new_bytes(conn, tmp_path):
    path = tmp_path / "usage.csv"
    path.write_text(csv_text(row(1), row(2)))
    _load(conn, path)
    replacement = tmp_path / "usage.csv.new"
    replacement.write_text(csv_text(row(1), row(2), row(3)))
    replacement.replace(path)  # a new inode at the same path, same first bytes
    plan = _load(conn, path)
    assert (plan.reason, plan.start, plan.position.records) == ("grown", len(csv_text(row(1), row(2)).encode()), 3)


def test_a_rotated_file_with_a_different_start_is_read_in_full(conn, tmp_path):
    path = tmp_path / "usage.csv"
    path.write_text(csv_text(row(1), row(2)))
    _load(conn, path)
    path.rename(tmp_path / "usage_backup_20261124_101010.csv")
    path.write_text(csv_text(row(5), row(6), row(7)))
    plan = _load(conn, path)
    assert (plan.reason, plan.start, plan.position.records) == ("changed", read_header(path).size, 3)


def test_a_no_op_run_on_a_100_mb_file_reads_only_its_head(conn, tmp_path):
    notes = "Phase 1 " + "n" * 999_992
    path = tmp_path / "usage.csv"
    with path.open("w") as handle:
        handle.write(CANONICAL_HEADER + "\n")
        for i in range(100):
            handle.write(row(i, notes=notes) + "\n")
    size = path.stat().st_size
    assert size > 100_000_000
    _backdate(path)
    time.sleep(RACY_SECONDS + 0.1)  # a stat taken right after a change is not trusted (same timestamp tick)
    first = _load(conn, path)
    assert (first.reason, first.position.records) == ("new file", 100)

    plan, read = _bytes_read_by(lambda: _plan(conn, path))
    assert plan.reason == "unchanged" and read < HEAD_BYTES * 4, read

    _backdate(path, 7200)  # touched, not changed: verified by reading once, then cheap again
    time.sleep(RACY_SECONDS + 0.1)
    plan, read = _bytes_read_by(lambda: _plan(conn, path))
    assert plan.reason == "unchanged" and read >= size, read
    mtime = conn.execute("select mtime_ns from telemetry_raw.file_checkpoints").fetchone()[0]
    assert mtime == path.stat().st_mtime_ns
    plan, read = _bytes_read_by(lambda: _plan(conn, path))
    assert plan.reason == "unchanged" and read < HEAD_BYTES * 4, read

    with path.open("r+b") as handle:  # one byte in the middle, same size, same mtime
        handle.seek(size // 2)
        handle.write(b"m")
    _backdate(path, 7200)
    assert _plan(conn, path).reason == "changed"


def test_a_checkpoint_written_by_0_1_0_is_verified_against_the_load_audit(telemetry):
    rows = [row(i, notes=f"Phase 1 call {i:04d}") for i in range(1600)]
    path = telemetry.write("usage.csv", csv_text(*rows[:1500]))
    assert path.stat().st_size > HEAD_BYTES + 1000
    telemetry.ingest(path)
    with path.open("a") as handle:
        handle.write("".join(r + "\n" for r in rows[1500:]))
    assert telemetry.ingest(path).loads[0].read == "grown"  # two loads: a chain of two byte ranges

    def as_released() -> None:  # the columns 0.1.0 did not have
        telemetry.query("update telemetry_raw.file_checkpoints set file_size = null, mtime_ns = null, "
                        "ctime_ns = null, file_id = null, prefix_fingerprint = null returning 1")

    as_released()
    with psycopg.connect(telemetry.url, autocommit=True) as conn:
        assert _plan(conn, path).reason == "unchanged"
        assert conn.execute("select prefix_fingerprint is not null from telemetry_raw.file_checkpoints"
                            ).fetchone() == (True,)
        as_released()
        with path.open("r+b") as handle:  # an edit past the head, in the first load's bytes
            handle.seek(HEAD_BYTES + 100)
            handle.write(b"#")
        assert _plan(conn, path).reason == "changed"


# --- paths that are not regular files, and paths that cannot be read -------------------------------------------


def test_an_empty_path_is_an_error_not_the_default_file(telemetry):
    for text in ("", "  "):
        with pytest.raises(TelemetryError, match="the path is empty"):
            resolve_paths(text)
    result = telemetry.cli("ingest", "csv", "")
    assert (result.returncode, len(result.stderr.splitlines())) == (2, 1), result.stderr
    assert result.stderr.startswith("error: ") and "empty" in result.stderr


def test_files_in_a_directory_are_matched_case_insensitively_and_hidden_files_are_skipped(tmp_path):
    for name in ("USAGE.CSV", "b.Csv", ".hidden.csv", "notes.txt"):
        (tmp_path / name).write_text(csv_text(row(1)))
    assert sorted(p.name for p in resolve_paths(tmp_path)) == ["USAGE.CSV", "b.Csv"]


def test_a_symbolic_link_to_a_regular_file_is_read(tmp_path):
    target = tmp_path / "real.csv"
    target.write_text(csv_text(row(1)))
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    assert resolve_paths(link) == [link]
    assert read_header(link).names[0] == "timestamp"


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "usage.csv"
    os.mkfifo(fifo)
    with pytest.raises(TelemetryError, match=r"is a FIFO \(named pipe\), not a regular file"):
        resolve_paths(fifo)
    with pytest.raises(TelemetryError, match="FIFO"):
        read_header(fifo)  # opened without blocking, then refused


def _run_as_another_user(telemetry, *args: str) -> subprocess.CompletedProcess:
    """The CLI as `nobody` when the tests run as root (root reads everything), else as ourselves."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    env.update({"TELEMETRY_DATABASE_URL": telemetry.url, "TELEMETRY_RETENTION_MONTHS": "0", "HOME": "/"})
    user = {"user": 65534, "group": 65534, "extra_groups": []} if os.geteuid() == 0 else {}
    return subprocess.run([sys.executable, "-m", "loader.cli", *args], capture_output=True, text=True, env=env,
                          cwd="/", timeout=120, **user)


def test_unreadable_files_and_untraversable_directories_are_permission_denied(telemetry):
    base = Path(tempfile.mkdtemp(prefix="telemetry-perm-"))
    try:
        base.chmod(0o755)
        locked_dir = base / "locked"
        locked_dir.mkdir()
        (locked_dir / "usage.csv").write_text(csv_text(row(1)))
        locked_dir.chmod(0)
        unreadable = base / "unreadable.csv"
        unreadable.write_text(csv_text(row(1)))
        unreadable.chmod(0)
        for path in (locked_dir / "usage.csv", unreadable, locked_dir):
            result = _run_as_another_user(telemetry, "ingest", "csv", str(path))
            assert result.returncode == 2, (path, result.stderr)
            assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
            assert result.stderr.startswith(f"error: {path}: permission denied"), result.stderr
    finally:
        for p in (base / "locked", base / "unreadable.csv"):
            if p.exists():
                p.chmod(0o700)
        shutil.rmtree(base, ignore_errors=True)
    assert telemetry.count("telemetry_raw.load_audit") == 0


# --- bounded resources ---------------------------------------------------------------------------------------


def test_a_header_quote_that_never_closes_costs_64_kib_not_the_file(tmp_path):
    path = tmp_path / "usage.csv"
    with path.open("wb") as handle:
        handle.write(b'"timestamp,model,' + b"x" * (50 << 20) + b"\n" + row(1).encode() + b"\n")

    def attempt() -> str:
        with pytest.raises(TelemetryError) as error:
            read_header(path)
        return str(error.value)

    message, read = _bytes_read_by(attempt)
    assert message.startswith(f"{path}: line 1: the header opens a quote that never closes within 64 KiB; ")
    assert read < 4 << 20, read


def _peak_rss_of(command: list[str], env: dict[str, str], cwd: Path) -> tuple[subprocess.CompletedProcess, int]:
    """Run a command and return its result and peak resident memory (bytes), measured by a parent of its own."""
    measure = ("import json, resource, subprocess, sys\n"
               "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
               "print(json.dumps([r.returncode, r.stdout, r.stderr, "
               "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))")
    out = subprocess.run([sys.executable, "-c", measure, *command], capture_output=True, text=True, env=env,
                         cwd=cwd, timeout=900)
    code, stdout, stderr, rss_kib = json.loads(out.stdout)
    return subprocess.CompletedProcess(command, code, stdout, stderr), rss_kib * 1024


def test_memory_stays_flat_over_200_mb_records_closed_or_unterminated(telemetry):
    folder = telemetry.tmp_path / "huge"
    folder.mkdir()
    field = b"Phase 9 " + b"y" * (200 << 20)
    with (folder / "a-closed.csv").open("wb") as handle:
        handle.write(csv_text(row(1)).encode() + row(2, notes="").encode() + b'"' + field + b'"\n'
                     + row(3).encode() + b"\n")
    with (folder / "b-unterminated.csv").open("wb") as handle:
        handle.write(csv_text(row(4)).encode() + row(5, notes="").encode() + b'"' + field)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    env.update({"TELEMETRY_DATABASE_URL": telemetry.url, "TELEMETRY_RETENTION_MONTHS": "0"})
    result, peak = _peak_rss_of([sys.executable, "-m", "loader.cli", "ingest", "csv", str(folder), "--json", "-q"],
                                env, telemetry.tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    files = {Path(f["source_file"]).name: f for f in json.loads(result.stdout)["files"]}
    closed, open_ = files["a-closed.csv"], files["b-unterminated.csv"]
    assert (closed["rows_read"], closed["inserted"], closed["rejected"]) == (3, 2, 1)
    assert "record is longer than 1 MiB" in closed["rejects"][0]["reason"]
    assert closed["rejects"][0]["first_lines"] == [3]
    assert (open_["rows_read"], open_["inserted"]) == (1, 1)  # the unterminated record waits, unread
    print(f"peak RSS of the CLI over 400 MB of huge records: {peak / 2**20:.0f} MiB")
    assert peak < 300 << 20, f"peak RSS {peak / 2**20:.0f} MiB"
    with psycopg.connect(telemetry.url) as conn:
        plan = _plan(conn, folder / "b-unterminated.csv")
    assert plan.pending_open_quote and plan.pending_line == 3 and "rejected as too long" in plan.pending_notice


@pytest.mark.parametrize("force_careful", [False, True], ids=["bulk-eligible", "careful"])
def test_both_landing_paths_load_a_record_of_exactly_1_mib_and_reject_one_byte_more(conn, tmp_path, force_careful):
    fixed = len(row(1, notes=""))
    exact = row(1, notes="Phase 1 " + "e" * (MAX_RECORD_BYTES - fixed - 8))
    over = row(2, notes="Phase 1 " + "o" * (MAX_RECORD_BYTES - fixed - 7))
    assert (len(exact), len(over)) == (MAX_RECORD_BYTES, MAX_RECORD_BYTES + 1)
    path = tmp_path / "usage.csv"
    path.write_text(csv_text(exact, over, row(3)) + ("\n" if force_careful else ""))  # a blank line: careful path
    _load(conn, path)
    got = conn.execute("select line_number, length(notes), parse_error from telemetry_raw.usage_rows "
                       "order by line_number").fetchall()
    assert got == [(2, MAX_RECORD_BYTES - fixed, None), (3, None, csv_scanner.TOO_LONG), (4, 13, None)]


def test_the_bundled_example_loads_every_record_with_nothing_pending(conn):
    plan = _load(conn, PROJECT_DIR / "examples" / "usage.csv")
    assert (plan.reason, plan.position.records, plan.pending_bytes) == ("new file", 60, 0)
    assert conn.execute("select count(*) from telemetry_raw.usage_rows where parse_error is null").fetchone() == (60,)


def test_a_file_of_a_million_blank_lines_is_read_in_bounded_time_and_memory(conn, tmp_path):
    path = tmp_path / "usage.csv"
    path.write_bytes(csv_text(row(1)).encode() + b"\n" * 1_000_000 + row(2).encode() + b"\n")
    plan = _load(conn, path)
    assert (plan.position.records, plan.position.lines) == (2, 1_000_003)
    assert conn.execute("select line_number from telemetry_raw.usage_rows order by 1").fetchall() == [
        (2,), (1_000_003,)]


def test_stat_kinds_in_messages_name_what_the_path_is(tmp_path):
    link = tmp_path / "zero.csv"
    link.symlink_to("/dev/zero")
    with pytest.raises(TelemetryError, match=r"is a symbolic link to /dev/zero, which is a character device"):
        resolve_paths(link)
    loop = tmp_path / "loop.csv"
    loop.symlink_to(tmp_path / "loop2.csv")
    (tmp_path / "loop2.csv").symlink_to(loop)
    with pytest.raises(TelemetryError, match="symbolic link loop"):
        resolve_paths(loop)
    assert stat.S_ISLNK(loop.lstat().st_mode)
