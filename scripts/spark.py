"""A local Apache Spark standalone cluster (one master, two workers) run from the pyspark wheel, for dbt-spark.

    .venv/bin/python scripts/spark.py up       # start it; prints the master URL (spark://127.0.0.1:7077)
    .venv/bin/python scripts/spark.py status   # exit 0 when up, 3 when down
    .venv/bin/python scripts/spark.py down     # stop what `up` started

The wheel ships bin/spark-class but not sbin/start-master.sh, so the daemons are started with spark-class, each in
its own session (process group), all bound to 127.0.0.1. Each worker offers 1 core and 2 GiB to executors.

Environment:
  TELEMETRY_SPARK_DIR   state folder: cluster.json (pids and ports), <daemon>.log, worker work dirs
                        (default <project>/.spark)
  TELEMETRY_SPARK_PORT  master port when --port is not given (default 7077); the master's web UI is on
                        --webui-port (default 8080) and the workers' on the next two ports
Needs Java 17 as `java` on PATH (or JAVA_HOME). Exit codes: 0 ok, 1 failed to start, 2 no Java, 3 down (status).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
WORKERS = 2
START_TIMEOUT_S = 90
STOP_GRACE_S = 10
JAVA_HINT = "java not found: install Java 17 with `apt-get install -y openjdk-17-jre-headless`"


class SparkError(Exception):
    """A problem the user can fix; the message says what and where to look."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def state_dir() -> Path:
    return Path(os.environ.get("TELEMETRY_SPARK_DIR") or ROOT / ".spark").resolve()


def spark_home() -> Path:
    import pyspark  # the wheel is SPARK_HOME: bin/, jars/

    return Path(pyspark.__file__).parent


def _alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child (library use) that has exited
            return False
    except ChildProcessError:
        pass  # not our child: started by an earlier `up`
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed daemon stays a zombie until init reaps it, and kill(pid, 0) still succeeds on it
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _read_state() -> dict | None:
    path = state_dir() / "cluster.json"
    return json.loads(path.read_text()) if path.exists() else None


def _master_json(webui_port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{webui_port}/json/", timeout=2) as response:
            return json.load(response)
    except (OSError, ValueError):
        return None


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def status() -> dict | None:
    """The running cluster's state (master_url, pids, ports, alive_workers), or None when no daemon of ours runs."""
    state = _read_state()
    if state is None or not any(_alive(pid) for pid in state["pids"].values()):
        return None
    info = _master_json(state["webui_port"]) or {}
    state["alive_workers"] = [w["id"] for w in info.get("workers", []) if w.get("state") == "ALIVE"]
    return state


def down() -> bool:
    """Stop the daemons `up` recorded (SIGTERM to each process group, SIGKILL after 10 s); False when none ran."""
    state = _read_state()
    if state is None:
        return False
    running = [pid for pid in state["pids"].values() if _alive(pid)]
    for pid in running:
        with contextlib.suppress(ProcessLookupError):  # the group holds the daemon and a worker's executors
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while any(_alive(pid) for pid in running) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in running:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    (state_dir() / "cluster.json").unlink()
    return bool(running)


def up(port: int = 7077, webui_port: int = 8080) -> dict:
    """Start the master and the workers unless they run already; returns the state once every worker is ALIVE."""
    state = status()
    if state is not None and all(_alive(pid) for pid in state["pids"].values()):
        return {**state, "already_up": True}
    down()  # a cluster with a dead daemon: stop the rest and start anew
    java_home = os.environ.get("JAVA_HOME")  # spark-class runs $JAVA_HOME/bin/java when set, else `java`
    if not (Path(java_home, "bin", "java").exists() if java_home else shutil.which("java")):
        raise SparkError(JAVA_HINT, exit_code=2)
    ports = [port, webui_port, *(webui_port + n for n in range(1, WORKERS + 1))]
    if busy := [p for p in ports if _port_open(p)]:
        raise SparkError(f"port {busy[0]} on {HOST} is in use by another program; pick others with --port/--webui-port")

    folder = state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    home = spark_home()
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": HOST}
    state = {"master_url": f"spark://{HOST}:{port}", "port": port, "webui_port": webui_port, "pids": {},
             "state_dir": str(folder)}
    deadline = time.monotonic() + START_TIMEOUT_S

    def start(name: str, args: list[str]) -> None:
        with open(folder / f"{name}.log", "ab") as log:
            process = subprocess.Popen([str(home / "bin" / "spark-class"), *args], env=env, cwd=folder,
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        state["pids"][name] = process.pid
        (folder / "cluster.json").write_text(json.dumps(state, indent=2) + "\n")

    def wait(ready: Callable[[], bool], waiting_on: str) -> None:
        while time.monotonic() < deadline:
            if dead := [name for name, pid in state["pids"].items() if not _alive(pid)]:
                down()
                raise SparkError(f"spark {dead[0]} exited at start; see {folder / (dead[0] + '.log')}")
            if ready():
                return
            time.sleep(0.5)
        down()
        raise SparkError(f"spark did not come up within {START_TIMEOUT_S} s; see {folder / (waiting_on + '.log')}")

    start("master", ["org.apache.spark.deploy.master.Master", "--host", HOST, "--port", str(port),
                     "--webui-port", str(webui_port)])
    # Workers that register before the master is elected leader are ignored and retry only 5-15 s later.
    wait(lambda: _port_open(port) and (_master_json(webui_port) or {}).get("status") == "ALIVE", "master")
    for n in range(1, WORKERS + 1):
        start(f"worker-{n}", ["org.apache.spark.deploy.worker.Worker", state["master_url"], "--host", HOST,
                              "--cores", "1", "--memory", "2g", "--webui-port", str(webui_port + n),
                              "--work-dir", str(folder / f"work-{n}")])
    wait(lambda: len((status() or {}).get("alive_workers", [])) >= WORKERS, "worker-1")
    return {**status(), "already_up": False}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a local Spark standalone cluster (1 master, 2 workers).")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("TELEMETRY_SPARK_PORT") or 7077),
                        help="master port (default $TELEMETRY_SPARK_PORT, else 7077); used by `up`")
    parser.add_argument("--webui-port", type=int, default=8080,
                        help="master web UI port; workers use the next two (default 8080); used by `up`")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            state = up(args.port, args.webui_port)
            print(f"spark already up: {state['master_url']}" if state["already_up"] else state["master_url"])
        elif args.command == "down":
            print("spark stopped" if down() else "spark not running")
        else:
            state = status()
            if state is None:
                print("spark down")
                return 3
            workers = ", ".join(state["alive_workers"]) or "none"
            print(f"spark up: {state['master_url']} (web UI http://{HOST}:{state['webui_port']}/); "
                  f"alive workers: {len(state['alive_workers'])} ({workers})")
    except SparkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
