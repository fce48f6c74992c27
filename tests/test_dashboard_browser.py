"""The dashboard in a real browser: Debian's Chromium, driven by Playwright (pytest-playwright), offline.

A real uvicorn server serves a database loaded once for the module. Without /usr/bin/chromium these tests skip
on a developer's machine, and fail in CI (CI=true). `UPDATE_SCREENSHOT=1` rewrites docs/dashboard.png.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import uvicorn
from dashboard_data import ESCAPE_MODEL, HOSTILE_MODEL, loaded_database

from dashboard.app import create_app
from dashboard.server import bind, url_of
from loader.config import PROJECT_DIR

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = PROJECT_DIR / "docs" / "dashboard.png"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's Chromium instead of a browser Playwright would download (never run `playwright install`)."""
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: CI must install it (apt-get install chromium), see .ci/run")
        pytest.skip(f"{CHROMIUM} is not installed")
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM)}


@pytest.fixture(scope="module")
def loaded(embedded_admin_url, tmp_path_factory):
    yield from loaded_database(embedded_admin_url, tmp_path_factory.mktemp("dashboard-browser"))


@pytest.fixture(scope="module")
def app_url(loaded):
    """A real uvicorn server on a free port of 127.0.0.1, in a thread."""
    telemetry, _ = loaded
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(telemetry.url), lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield url_of(sock).rstrip("/")
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()


@pytest.fixture
def watched(page, app_url):
    """The page, with every request, console error and dialog it causes recorded."""
    seen = {"requests": [], "errors": [], "dialogs": []}
    page.on("request", lambda request: seen["requests"].append(request.url))
    page.on("console", lambda message: message.type == "error" and seen["errors"].append(message.text))
    page.on("pageerror", lambda error: seen["errors"].append(str(error)))

    def on_dialog(dialog):
        seen["dialogs"].append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return page, seen


def test_every_page_draws_its_charts_and_asks_only_the_app(watched, app_url):
    page, seen = watched
    for path in ["/", "/models", "/phases", "/prompts", "/errors", "/sessions", "/calls"]:
        page.goto(app_url + path)
        page.wait_for_load_state("networkidle")
        canvases = page.locator("canvas[data-chart]")
        for i in range(canvases.count()):
            assert canvases.nth(i).get_attribute("data-drawn") == "true", path
        assert page.locator("main table").count() >= 1, path
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        page.set_viewport_size({"width": 1280, "height": 1000})
        page.goto(app_url + "/?since=2026-11-06&until=2026-11-20")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(SCREENSHOT), full_page=False)
    assert seen["requests"] and all(url.startswith(app_url + "/") for url in seen["requests"]), [
        url for url in seen["requests"] if not url.startswith(app_url + "/")]
    assert seen["errors"] == []  # a Content-Security-Policy violation would be reported here


def test_hostile_names_are_shown_and_run_nothing(watched, app_url):
    page, seen = watched
    page.goto(app_url + "/models")
    page.wait_for_load_state("networkidle")
    names = page.locator("#by-model tbody th").all_inner_texts()
    assert HOSTILE_MODEL in names
    assert ESCAPE_MODEL.replace("\x1b", "\\x1b") in names
    page.goto(app_url + "/prompts")
    page.wait_for_load_state("networkidle")
    assert "<img src=x onerror=alert(2)>" in page.locator("#by-prompt-name").inner_text()
    assert seen["dialogs"] == [] and seen["errors"] == []


def test_the_filter_form_narrows_the_page_and_keeps_the_url(watched, app_url):
    page, _ = watched
    page.goto(app_url + "/")
    all_calls = int(page.locator("#kpi-calls").inner_text().replace(",", ""))
    page.select_option("select[name=model]", "gpt-4o-mini")
    page.fill("input[name=since]", "2026-11-01")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_load_state("networkidle")
    query = parse_qs(urlsplit(page.url).query)
    assert query["model"] == ["gpt-4o-mini"] and query["since"] == ["2026-11-01"]
    filtered = int(page.locator("#kpi-calls").inner_text().replace(",", ""))
    assert 0 < filtered < all_calls
    assert page.locator("#by-model tbody th").all_inner_texts() == ["gpt-4o-mini"]
    page.get_by_role("link", name="Models", exact=True).click()
    assert parse_qs(urlsplit(page.url).query)["model"] == ["gpt-4o-mini"]
