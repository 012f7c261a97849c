"""The ops page in a real browser: Playwright drives Debian's chromium over loopback
against a real `bulk-sync serve` process and the emulator.

The whole flow, as an ops person does it: upload the samples, map the columns of a file
with other headers, see the problems, sync with injected faults, stop mid-run and resume,
retry the failed rows, download the report and compare it with the CLI's. Every HTTP
answer the browser receives (headers and bodies, the event stream included) is scanned
for the API key, and so is the server's log.

Screenshots of each step go to ``out/screenshots/`` (git-ignored). Without chromium or
Playwright these tests skip with one line saying why; with ``CI`` set they fail instead.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bulk_sync.emulator import EmulatorSettings, EmulatorThread
from helpers import write_csv

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SHOTS = ROOT / "out" / "screenshots"
TOKEN = "c0ffee00" * 8
CHROME_ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
]

pytestmark = pytest.mark.slow


def _unavailable() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[dev]')"
    if shutil.which("chromium") is None:
        return "chromium is not installed (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _unavailable()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests cannot run in CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    args = list(CHROME_ARGS)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=args)
        yield browser
        browser.close()


@dataclass
class Server:
    """A `bulk-sync serve` process; its stderr is collected in ``log``."""

    url: str
    process: subprocess.Popen[str]
    data_dir: Path
    log: list[str] = field(default_factory=list)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_server(tmp: Path, base_url: str, **config: object) -> Server:
    settings = {"base_url": base_url, "backoff_initial": 0.01, "backoff_max": 0.05, **config}
    config_file = tmp / "config.yaml"
    config_file.write_text("".join(f"{k}: {v}\n" for k, v in settings.items()))
    env = dict(os.environ, IC_API_TOKEN=TOKEN, PYTHONUNBUFFERED="1")
    env.pop("BULK_SYNC_WEB_PASSWORD", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "bulk_sync", "serve", "--port", "0", "--config",
         str(config_file), "--data-dir", str(tmp / "data")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    log: list[str] = []
    deadline = time.monotonic() + 30
    url = ""
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        log.append(line)
        if "open http://" in line:
            url = line.split("open ", 1)[1].split()[0]
            break
    if not url:
        process.kill()
        raise AssertionError("bulk-sync serve did not start:\n" + "".join(log))
    stream = process.stderr
    threading.Thread(target=lambda: log.extend(stream), daemon=True).start()
    return Server(url, process, tmp / "data", log)


@dataclass
class Scanner:
    """Every answer the browser gets, checked for the API key (whole, or any 16 of its
    characters in a row)."""

    seen: int = 0
    urls: set[str] = field(default_factory=set)
    leaks: list[str] = field(default_factory=list)

    def check(self, where: str, data: bytes | str) -> None:
        text = data if isinstance(data, str) else data.decode("latin-1")
        self.seen += 1
        for k in range(0, len(TOKEN) - 15, 8):
            if TOKEN[k : k + 16] in text:
                self.leaks.append(where)
                return

    def check_headers(self, where: str, headers: dict[str, str]) -> None:
        self.check(where + " (headers)", "\n".join(f"{k}: {v}" for k, v in headers.items()))


def open_page(browser: Any, server: Server, scanner: Scanner) -> Any:
    context = browser.new_context(
        viewport={"width": 1366, "height": 768}, accept_downloads=True, base_url=server.url
    )

    def through_scanner(route: Any) -> None:
        request = route.request
        scanner.urls.add(request.url)
        if request.url.endswith("/events") or "multipart/form-data" in (
            request.headers.get("content-type", "")
        ):
            # A live stream (scanned in the page), or an upload, whose file bodies route
            # interception cannot replay: both are scanned by on_response below.
            route.continue_()
            return
        response = route.fetch(max_redirects=0)
        body = response.body()
        scanner.check_headers(route.request.url, response.headers)
        scanner.check(route.request.url, body)
        route.fulfill(response=response, body=body)

    context.route("**/*", through_scanner)
    context.expose_function("__bulkSyncEvent", lambda data: scanner.check("event stream", data))
    context.add_init_script(
        """(() => {
          const Original = window.EventSource;
          window.EventSource = function (url, options) {
            const source = new Original(url, options);
            for (const type of ["progress", "finished"]) {
              source.addEventListener(type, (e) => window.__bulkSyncEvent(e.data));
            }
            return source;
          };
        })();"""
    )
    page = context.new_page()

    def on_response(response: Any) -> None:
        request = response.request
        if response.url.endswith("/events"):
            scanner.check_headers(response.url, response.all_headers())
        elif "multipart/form-data" in request.headers.get("content-type", ""):
            scanner.check_headers(response.url, response.all_headers())
            if not 300 <= response.status < 400:  # a redirect has no body to read
                scanner.check(response.url, response.body())

    page.on("response", on_response)
    page.set_default_timeout(20_000)
    return page


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def wait_result(page: Any, timeout: float = 60_000) -> None:
    page.wait_for_selector("#summary-heading", timeout=timeout)


def confirm_sync(page: Any) -> None:
    page.get_by_role("link", name="Sync…").first.click()
    page.wait_for_selector("text=Yes, sync now")


def map_columns(page: Any, file: int, customer: str, attribute: str, value: str) -> None:
    """Choose the three columns of the ``file``-th file in the page's mapping form."""
    form = page.locator(f"#mapping-{file}")
    form.get_by_label("Customer id column", exact=True).select_option(customer)
    form.get_by_label("Attribute column", exact=True).select_option(attribute)
    form.get_by_label("Value column", exact=True).select_option(value)
    form.get_by_role("button", name="Use these columns").click()


def sync_until(page: Any, file: Path, *, rows_done: int) -> None:
    """Upload ``file``, sync it, and wait on the live page until ``rows_done`` rows are."""
    page.goto("/")
    page.get_by_label("Files to upload").set_input_files(str(file))
    page.get_by_role("button", name="Upload and check").click()
    confirm_sync(page)
    page.get_by_role("button", name="Yes, sync now").click()
    page.wait_for_selector("section.progress")
    field = page.locator("[data-field=rows_done]")

    def done() -> int:
        return int((field.text_content() or "0").replace(",", "").strip() or 0)

    wait_until(page, lambda: done() >= rows_done)


def wait_until(page: Any, condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``condition`` (which reads the page through locators) until it holds.

    Not ``page.wait_for_function``: its string predicate is compiled in the page, which
    the page's Content-Security-Policy (no 'unsafe-eval') refused now and then."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"the page did not get there in {timeout:g} s")
        page.wait_for_timeout(100)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmulatorThread, Server]]:
    tmp = tmp_path_factory.mktemp("web-clean")
    with EmulatorThread(EmulatorSettings(port=0, token=TOKEN)) as emulator:
        server = start_server(tmp, emulator.base_url)
        try:
            yield emulator, server
        finally:
            server.stop()
            assert not any(TOKEN[:16] in line for line in server.log), "the key in the log"


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmulatorThread, Server]]:
    """An emulator with latency, 503s, 429s and four customers it does not know."""
    tmp = tmp_path_factory.mktemp("web-faulty")
    known = frozenset(str(600000 + k) for k in range(150))
    settings = EmulatorSettings(
        port=0, token=TOKEN, customers=known, latency=0.03, error_rate=0.05,
        throttle_rate=0.03, retry_after=0.2, seed=11,
    )  # fmt: skip
    with EmulatorThread(settings) as emulator:
        server = start_server(tmp, emulator.base_url, concurrency=2)
        try:
            yield emulator, server
        finally:
            server.stop()
            assert not any(TOKEN[:16] in line for line in server.log), "the key in the log"


def drop_file(page: Any, selector: str, name: str, content: bytes) -> None:
    """Drop a file on the drop zone, as dragging it from the desktop does."""
    page.evaluate(
        """([selector, name, bytes]) => {
          const data = new DataTransfer();
          data.items.add(new File([new Uint8Array(bytes)], name));
          const zone = document.querySelector(selector);
          zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: data, bubbles: true}));
          zone.dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true}));
        }""",
        [selector, name, list(content)],
    )


def test_upload_map_columns_and_see_the_problems(
    browser: Any, clean: tuple[EmulatorThread, Server]
) -> None:
    _, server = clean
    scanner = Scanner()
    page = open_page(browser, server, scanner)
    page.goto("/")
    assert page.title() == "Upload · bulk-sync"
    shot(page, "01-start")
    page.get_by_label("Files to upload").set_input_files(
        [str(SAMPLES / "customers.csv"), str(SAMPLES / "customers.xlsx")]
    )
    page.get_by_role("button", name="Upload and check").click()
    page.wait_for_selector("#dry-heading")
    assert "Read 167 rows." in page.inner_text("#file-0")
    assert "Read 130 rows from sheet “Clientes”" in page.inner_text("#file-1")
    problems = page.locator("table.problems tbody tr")
    assert problems.count() == 6
    row = problems.filter(has_text="attribute is empty")
    assert row.locator("td").nth(2).inner_text() == "42"  # the spreadsheet's row number
    assert row.locator("td").nth(3).inner_text() == "B Attribute"  # letter and name
    conflict = page.locator("table.conflicts tbody tr").first
    assert "row 77" in conflict.inner_text()
    assert "row 167" in conflict.inner_text()
    shot(page, "02-dry-run-problems")

    # A file with other headers, dropped on the page: map its columns.
    drop_file(
        page, "#files-more", "clientes-crm.csv",
        (SAMPLES / "other-headers" / "clientes-crm.csv").read_bytes(),
    )  # fmt: skip
    page.wait_for_selector("#file-2 .alert")
    assert "missing columns" in page.inner_text("#file-2")
    assert "Fix the files above" in page.inner_text("section[aria-labelledby=dry-heading]")
    page.locator("#file-2").scroll_into_view_if_needed()
    shot(page, "03-map-columns")
    map_columns(page, 2, "NIF", "Campo", "Valor")
    page.wait_for_selector("#dry-heading")
    assert "Read 10 rows." in page.inner_text("#file-2")
    assert page.locator("table.problems tbody tr").count() == 7  # one more: an empty Valor
    empty = page.locator("table.problems tbody tr", has_text="clientes-crm.csv")
    assert empty.locator("td").nth(3).inner_text() == "C Valor"
    # keyboard: the first control of a page is the skip link
    page.goto("/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to the content"
    assert scanner.seen > 5
    assert not scanner.leaks, scanner.leaks
    # Works offline: every resource the pages asked for came from this server.
    assert all(url.startswith(server.url) for url in scanner.urls), scanner.urls


def test_report_downloaded_from_the_page_is_the_cli_report(
    browser: Any, clean: tuple[EmulatorThread, Server], tmp_path: Path
) -> None:
    emulator, server = clean
    scanner = Scanner()
    page = open_page(browser, server, scanner)
    page.goto("/")
    page.get_by_label("Files to upload").set_input_files(
        [str(SAMPLES / "customers.csv"), str(SAMPLES / "customers.xlsx")]
    )
    page.get_by_role("button", name="Upload and check").click()
    confirm_sync(page)
    lead = page.inner_text(".confirm .lead")
    assert emulator.base_url in lead
    assert "60 customers" in lead
    shot(page, "04-confirm")
    page.get_by_role("button", name="Yes, sync now").click()
    wait_result(page)
    assert "Done, with problems" in page.inner_text("main")
    with page.expect_download() as csv_download:
        page.get_by_role("link", name="Download the report (CSV)").click()
    with page.expect_download() as xlsx_download:
        page.get_by_role("link", name="Download the report (XLSX, for Excel)").click()
    page_csv = Path(csv_download.value.path()).read_bytes()
    page_xlsx = Path(xlsx_download.value.path()).read_bytes()
    assert csv_download.value.suggested_filename.endswith(".csv")

    env = dict(os.environ, IC_API_TOKEN=TOKEN)
    for name in ("cli.csv", "cli.xlsx"):
        done = subprocess.run(
            [sys.executable, "-m", "bulk_sync", "sync", "customers.csv", "customers.xlsx",
             "--base-url", emulator.base_url, "--report", str(tmp_path / name), "-q"],
            cwd=SAMPLES, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 1, done.stderr
    assert page_csv == (tmp_path / "cli.csv").read_bytes()  # byte for byte
    assert _sheets(page_xlsx) == _sheets((tmp_path / "cli.xlsx").read_bytes())
    assert not scanner.leaks, scanner.leaks


def _sheets(xlsx: bytes) -> dict[str, list[list[str]]]:
    """The cells of every sheet, the summary's timestamp left out."""
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(xlsx), read_only=True)
    cells = {
        ws.title: [
            ["" if c is None else str(c) for c in row] for row in ws.iter_rows(values_only=True)
        ]
        for ws in book.worksheets
    }
    cells["summary"] = [row for row in cells["summary"] if row[0] != "written"]
    return cells


def test_sync_with_faults_stop_resume_and_retry_the_failed_rows(
    browser: Any, faulty: tuple[EmulatorThread, Server], tmp_path: Path
) -> None:
    emulator, server = faulty
    scanner = Scanner()
    page = open_page(browser, server, scanner)
    # 154 customers, of which 4 the API does not know (404: failed).
    rows = [(str(600000 + k), "segmento", f"S{k % 5}") for k in range(154)]
    big = write_csv(tmp_path / "clientes-2026.csv", rows)
    sync_until(page, big, rows_done=10)
    live = page.locator("#live[aria-live=polite]")
    assert "rows done" in live.inner_text()  # what a screen reader is told
    slowed = page.inner_text("[data-field=throttled_text]")  # "once", "3 times"
    assert re.fullmatch(r"once|[\d,]+ times", slowed), slowed
    shot(page, "05-progress")
    page.get_by_role("button", name="Stop").click()
    wait_result(page)
    text = page.inner_text("main")
    assert "Stopped before the end" in text
    assert "not_sent" in text
    shot(page, "06-stopped")

    page.get_by_role("link", name="Resume: send the rest…").click()
    assert emulator.base_url in page.inner_text(".confirm")
    page.get_by_role("button", name="Yes, resume the run now").click()
    wait_result(page)
    text = page.inner_text("main")
    assert "Done, with problems" in text
    assert "customer not found" in text  # the 4 unknown customers
    assert "time(s)" not in text
    shot(page, "07-resumed")

    emulator.state.directory = None  # the API now knows every customer
    page.get_by_role("link", name="Retry the 4 rows that failed or were not sent…").click()
    assert "Send again the 4 rows" in page.inner_text(".confirm")
    page.get_by_role("button", name="Yes, retry the failed rows now").click()
    wait_result(page)
    assert "Done: every row was sent or skipped." in page.inner_text("main")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the report (CSV)").click()
    with open(download.value.path(), newline="", encoding="utf-8") as f:
        retried = list(csv.DictReader(f))
    assert [(r["row"], r["status"]) for r in retried] == [
        (str(k + 2), "ok") for k in range(150, 154)
    ]  # the original row numbers of the failed rows
    shot(page, "08-retried")
    page.get_by_role("link", name="History").click()
    history = page.locator("table.runs tbody tr")
    assert history.count() == 3
    assert "Retry failed" in history.nth(0).inner_text()
    assert "Resume" in history.nth(1).inner_text()
    assert "stopped" in history.nth(2).inner_text()
    shot(page, "09-history")
    assert emulator.state.faults["error"] + emulator.state.faults["throttle"] > 0
    assert not scanner.leaks, scanner.leaks


def test_a_cross_site_form_post_from_another_origin_is_refused(
    browser: Any, clean: tuple[EmulatorThread, Server]
) -> None:
    _, server = clean
    page = browser.new_page()
    page.goto(server.url)  # a session cookie (SameSite=Strict, so not sent cross-site)
    evil = browser.new_page()
    evil.set_content(
        f"""<form method="post" action="{server.url}runs/r20260101T000000Z-abcdef/stop">
        <input name="csrf_token" value="guess"><button>go</button></form>"""
    )
    with evil.expect_navigation():
        evil.click("button")
    assert "Refused" in evil.inner_text("body")
    page.close()
    evil.close()


def test_a_run_cut_off_by_a_killed_server_is_resumed_after_a_restart(
    browser: Any, tmp_path: Path
) -> None:
    scanner = Scanner()
    rows = [(str(700000 + k), "segmento", "S") for k in range(80)]
    big = write_csv(tmp_path / "lote.csv", rows)
    with EmulatorThread(EmulatorSettings(port=0, token=TOKEN, latency=0.05)) as emulator:
        server = start_server(tmp_path, emulator.base_url, concurrency=1)
        try:
            page = open_page(browser, server, scanner)
            sync_until(page, big, rows_done=5)
        finally:
            server.process.kill()  # kill -9: no graceful stop, no report
            server.process.wait(timeout=10)
        # The page says it lost the server instead of showing the last numbers as live.
        page.wait_for_selector("section.progress.lost")
        assert "Lost contact with the server" in page.inner_text("#state-line")
        shot(page, "10-server-gone")
        page.context.close()
        server = start_server(tmp_path, emulator.base_url, concurrency=1)
        try:
            page = open_page(browser, server, scanner)
            page.goto("/runs")
            assert "cut off" in page.inner_text("table.runs")
            page.locator("table.runs tbody tr a").first.click()
            assert "the server stopped while this run was sending" in page.inner_text("main")
            page.get_by_role("link", name="Resume: send the rest…").click()
            page.get_by_role("button", name="Yes, resume the run now").click()
            wait_result(page)
            assert "Done: every row was sent or skipped." in page.inner_text("main")
            summary = page.inner_text("table.summary")
            skipped = int(summary.split("skipped")[1].split()[0])
            assert skipped >= 5  # what the journal said was accepted is not sent again
            assert f"ok\t{80 - skipped}" in summary
            assert len(emulator.state.customers) == 80
            shot(page, "11-resumed-after-restart")
        finally:
            server.stop()
    assert not scanner.leaks, scanner.leaks


def test_stopping_the_server_stops_a_run_gracefully_with_its_report(
    browser: Any, tmp_path: Path
) -> None:
    import json
    import signal

    rows = [(str(710000 + k), "segmento", "S") for k in range(60)]
    big = write_csv(tmp_path / "lote.csv", rows)
    with EmulatorThread(EmulatorSettings(port=0, token=TOKEN, latency=0.05)) as emulator:
        server = start_server(tmp_path, emulator.base_url, concurrency=1)
        try:
            page = open_page(browser, server, Scanner())
            sync_until(page, big, rows_done=3)
            page.context.close()
        finally:
            server.process.send_signal(signal.SIGTERM)  # what a service manager sends
            assert server.process.wait(timeout=30) == 0
    (record_file,) = (server.data_dir / "runs").glob("*/run.json")
    record = json.loads(record_file.read_text())
    assert record["status"] == "finished"
    assert record["exit_code"] == 3  # as `sync` on SIGTERM
    counts = record["counts"]
    assert counts["ok"] + counts["not_sent"] == 60
    assert (record_file.parent / "report.csv").stat().st_size > 0


def test_on_a_phone_sized_screen_no_page_scrolls_sideways(
    browser: Any, clean: tuple[EmulatorThread, Server], tmp_path: Path
) -> None:
    """At 375 px (a phone) wide tables scroll in their own box: the page itself never
    gets wider than the screen (a phone would show it zoomed out, hard to use)."""
    _, server = clean
    context = browser.new_context(
        viewport={"width": 375, "height": 740}, base_url=server.url, is_mobile=True
    )
    page = context.new_page()
    page.set_default_timeout(20_000)

    def fits(name: str) -> None:
        shot(page, f"narrow-{name}")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{name}: the page is {width} px wide on a 375 px screen"

    page.goto("/")
    # Headers no other test has mapped (a mapping is remembered), with long cells.
    crm = tmp_path / "telemovel.csv"
    crm.write_text(
        "Contribuinte,Campo do cliente,Valor do campo\n"
        + "".join(f"{510000000 + k},observacoes,{'texto comprido ' * 8}{k}\n" for k in range(5))
    )
    page.get_by_label("Files to upload").set_input_files([str(SAMPLES / "customers.csv"), str(crm)])
    page.get_by_role("button", name="Upload and check").click()
    page.wait_for_selector("#file-1 table.sample")  # the mapping's first rows
    fits("mapping")
    map_columns(page, 1, "Contribuinte", "Campo do cliente", "Valor do campo")
    page.wait_for_selector("table.problems")
    fits("dry-run")
    confirm_sync(page)
    fits("confirm")
    page.get_by_role("button", name="Yes, sync now").click()
    wait_result(page)
    fits("result")
    page.goto("/runs")
    page.wait_for_selector("table.runs")
    fits("history")
    page.goto("/")
    fits("start")
    context.close()


def test_an_outage_is_shown_live_with_its_time_in_utc_as_the_rest_of_the_page(
    browser: Any, tmp_path: Path
) -> None:
    """The page's times are UTC ("Sync started 10:02:29 UTC"); the outage's start was shown
    in the browser's own zone ("since 11:02:31 AM" in Lisbon in summer)."""
    rows = [(str(720000 + k), "segmento", "S") for k in range(40)]
    big = write_csv(tmp_path / "lote.csv", rows)
    settings = EmulatorSettings(port=0, token=TOKEN, outage_after=5, outage_seconds=120)
    with EmulatorThread(settings) as emulator:
        server = start_server(tmp_path, emulator.base_url, concurrency=1)
        try:
            context = browser.new_context(
                viewport={"width": 1366, "height": 768},
                base_url=server.url,
                timezone_id="America/Sao_Paulo",  # UTC-3: never the same clock as UTC
            )
            page = context.new_page()
            page.set_default_timeout(20_000)
            sync_until(page, big, rows_done=5)
            breaker = page.locator("[data-field=breaker_text]")
            wait_until(page, lambda: (breaker.text_content() or "").startswith("unavailable"))
            text = page.inner_text("[data-field=breaker_text]")
            shot(page, "12-outage")
            started = page.inner_text("h1")  # "Sync started 2026-12-01 10:18:27 UTC"
            match = re.search(r"since (\d\d):(\d\d):\d\d UTC", text)
            assert match is not None, text
            began = re.search(r" (\d\d):\d\d:\d\d UTC", started)
            assert began is not None, started
            hour = int(began.group(1))
            assert int(match.group(1)) in (hour, (hour + 1) % 24), (started, text)
            page.get_by_role("button", name="Stop").click()
            wait_result(page)
            context.close()
        finally:
            server.stop()


def test_a_long_file_name_never_makes_a_page_wider_than_the_window(
    browser: Any, clean: tuple[EmulatorThread, Server], tmp_path: Path
) -> None:
    """A 200-character file name has no space to break at: in the problems, conflicts and
    history tables it wraps instead of widening the page (it was 2,532 px wide)."""
    _, server = clean
    name = "Clientes_" + "muito_longo_" * 20 + "2026.csv"
    long = tmp_path / "long"
    long.mkdir()
    shutil.copy(SAMPLES / "customers.csv", long / "x.csv")
    page = open_page(browser, server, Scanner())

    def fits(step: str) -> None:
        shot(page, f"long-name-{step}")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1366, f"{step}: the page is {width} px wide in a 1366 px window"

    page.goto("/")
    page.get_by_label("Files to upload").set_input_files(
        [{"name": name, "mimeType": "text/csv", "buffer": (long / "x.csv").read_bytes()}]
    )
    page.get_by_role("button", name="Upload and check").click()
    page.wait_for_selector("table.problems")
    assert "…" in page.inner_text("#file-0 h3")  # shortened in the middle
    fits("dry-run")
    confirm_sync(page)
    page.get_by_role("button", name="Yes, sync now").click()
    wait_result(page)
    fits("result")
    page.goto("/runs")
    fits("history")
    page.context.close()
