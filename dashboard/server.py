"""``telemetry dashboard``: serve the app with uvicorn until SIGINT or SIGTERM, then exit 0.

The socket is bound here, before uvicorn starts, so that a port in use is a one-line user error (exit 2) and
``--port 0`` can pick a free port (the printed URL names it).
"""

from __future__ import annotations

import contextlib
import errno
import signal
import socket
import sys
import threading
import webbrowser
from collections.abc import Generator

import uvicorn

from loader.errors import TelemetryError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; a port in use or an unknown host is a TelemetryError."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise TelemetryError(f"cannot listen on {host}: {exc.strerror}; pass --host 127.0.0.1 or an address "
                             "of this machine") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise TelemetryError(f"port {port} on {host} is in use (another dashboard?); stop it or pass "
                                 "--port with a free port") from None
        raise TelemetryError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


class _Server(uvicorn.Server):
    """uvicorn, announcing itself once it serves, and ending quietly on a signal (exit 0, no re-raise)."""

    def __init__(self, config: uvicorn.Config, url: str, open_browser: bool) -> None:
        super().__init__(config)
        self.url = url
        self.open_browser = open_browser

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            print(f"dashboard at {self.url}", flush=True)
            if self.open_browser:
                threading.Thread(target=webbrowser.open, args=(self.url,), daemon=True).start()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, open_browser: bool = False,
          database_url: str | None = None) -> int:
    """Run the dashboard in the foreground; returns 0 once a signal stopped it."""
    from dashboard.app import create_app

    app = create_app(database_url)  # resolves the database first: a bad configuration fails before we listen
    sock = bind(host, port)
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False, server_header=False)
    server = _Server(config, url_of(sock), open_browser)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    sys.stdout.flush()
    return 0
