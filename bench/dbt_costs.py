"""dbt's fixed costs in a new process, as an ``ingest csv`` run pays them before its first node:

    python -m bench.dbt_costs URL RETENTION_MONTHS     # prints {"import_s": ..., "parse_s": ...}

- import: importing dbt's runner and the postgres adapter (what ``loader.dbt`` imports on its first call);
- parse: ``dbt parse`` of the project with the loader's profile and variables, the partial-parse cache of the
  earlier runs warm (what every ``dbt build`` of the loader does before it runs a node).

Run by bench/run.py after the appends, on the benchmark's database; the rest of an append is the loader's own
work and dbt's nodes.
"""

from __future__ import annotations

import json
import sys
import time


def main(argv: list[str]) -> int:
    url, months = argv[0], int(argv[1])
    started = time.perf_counter()
    import dbt.adapters.postgres  # noqa: F401  (the adapter plugin, as dbt loads it for the profile)
    from dbt.cli.main import dbtRunner  # noqa: F401

    imported = time.perf_counter()
    from loader import dbt
    from loader.contract import dbt_vars
    from loader.retention import retention_cutoff

    ready = time.perf_counter()
    dbt.invoke(url, ["parse"], dbt_vars=dbt_vars(retention_cutoff(months)), write_json=False)
    parsed = time.perf_counter()
    print(json.dumps({"import_s": round(imported - started, 3), "parse_s": round(parsed - ready, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
