"""Which files an ``ingest csv`` PATH names: a file, a directory of .csv files, or a glob pattern."""

from __future__ import annotations

import glob
from pathlib import Path

from loader.errors import TelemetryError


def resolve_paths(path: Path) -> list[Path]:
    """A file, a directory (its *.csv files) or a glob pattern; several files are read oldest first."""
    text = str(path)
    if any(ch in text for ch in "*?[") and not path.exists():
        found = [Path(p) for p in glob.glob(text)]
        if not found:
            raise TelemetryError(f"{text}: no file matches this pattern")
    elif path.is_dir():
        found = list(path.glob("*.csv"))
        if not found:
            raise TelemetryError(f"{path}: the directory holds no .csv files; pass a CSV file or a directory of them")
    else:
        return [path]
    return sorted((p for p in found if p.is_file()), key=lambda p: (p.stat().st_mtime, p.name))
