"""`pnpm install` runs this: a Python virtual environment in .venv with the package, dbt and the test tools.

Idempotent and quick when nothing changed. Needs Python >= 3.11 as `python3` (or set PYTHON).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"


def main() -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - pnpm may run an older python3
        print(f"llm-telemetry needs Python >= 3.11; {sys.executable} is {sys.version.split()[0]}", file=sys.stderr)
        return 2
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    quiet = [] if os.environ.get("TELEMETRY_SETUP_VERBOSE") else ["--quiet"]
    subprocess.run([str(python), "-m", "pip", "install", *quiet, "--upgrade", "pip"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", *quiet, "-e", f"{ROOT}[test]"], check=True)
    print("llm-telemetry is installed in .venv (try: pnpm telemetry --help)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
