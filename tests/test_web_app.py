"""The ops page in-process (aiohttp's test client): security, upload, mapping, dry run.

Runs (sync, stop, resume, retry) are in ``test_web_runs.py``; the real browser in
``test_web_browser.py``.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from bulk_sync.config import Settings
from bulk_sync.web.store import DataDir
from helpers import write_csv
from web_support import SAMPLES, Page, page_app

TOKEN = "fedcba9876543210" * 4


@pytest.fixture
async def page(tmp_path: Path) -> Page:
    async with page_app(tmp_path / "data", Settings(), token=TOKEN) as p:
        yield p  # type: ignore[misc]
        p.assert_no_secret()


def other_headers_csv() -> bytes:
    return (SAMPLES / "other-headers" / "clientes-crm.csv").read_bytes()


async def test_start_page_shows_the_upload_form_with_security_headers(page: Page) -> None:
    async with page.client.get("/") as response:
        text = await response.text()
        assert response.status == 200
        headers = response.headers
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        cookie = headers["Set-Cookie"]
    assert 'type="file"' in text
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain http on loopback


async def test_the_session_cookie_is_secure_behind_tls(page: Page) -> None:
    async with page.client.get("/", headers={"X-Forwarded-Proto": "https"}) as response:
        assert "Secure" in response.headers["Set-Cookie"]


async def test_a_post_without_the_csrf_token_is_refused(page: Page) -> None:
    await page.get("/")
    status, text = await page.post("/runs/r20260101T000000Z-abcd/stop", csrf=False)
    assert status == 403
    assert "did not come from this page" in text


async def test_a_cross_site_post_is_refused_even_with_the_token(page: Page) -> None:
    await page.get("/")
    status, text = await page.post(
        "/runs/r20260101T000000Z-abcd/stop", headers={"Origin": "https://evil.example"}
    )
    assert status == 403
    assert "another site" in text
    status, _ = await page.post(
        "/runs/r20260101T000000Z-abcd/stop", headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert status == 403


async def test_a_cross_site_upload_stores_nothing(page: Page) -> None:
    await page.get("/")
    status, _, _ = await page.upload(
        "/upload", [("a.csv", b"customer_id,attribute,value\n")], csrf=False
    )
    assert status == 403
    assert not list((page.data_dir / "uploads").iterdir())


async def test_another_host_name_is_refused_against_dns_rebinding(page: Page) -> None:
    status, _ = await page.get("/", headers={"Host": "attacker.example:8765"})
    assert status == 421


async def test_an_upload_named_with_dots_and_slashes_stays_in_the_data_dir(page: Page) -> None:
    content = b"customer_id,attribute,value\n1,a,b\n"
    status, text, path = await page.upload("/upload", [("../../x.csv", content)])
    assert status == 200
    assert path.startswith("/drafts/")
    assert not (page.data_dir.parent / "x.csv").exists()
    assert not (page.data_dir / "x.csv").exists()
    stored = list((page.data_dir / "uploads").glob("*.csv"))
    assert len(stored) == 1
    assert stored[0].read_bytes() == content
    assert stored[0].name != "x.csv"  # a name the server chose
    assert stored[0].resolve().is_relative_to((page.data_dir / "uploads").resolve())
    assert ">x.csv<" in text  # shown as the file's own name, without the path


async def test_file_names_are_escaped_in_the_page(page: Page) -> None:
    name = '<img src=x onerror="alert(1)">.csv'
    status, text, _ = await page.upload(
        "/upload", [(name, b"customer_id,attribute,value\n1,a,b\n")]
    )
    assert status == 200
    assert "<img src=x" not in text
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;.csv" in text


async def test_an_oversize_upload_is_refused_with_a_message(tmp_path: Path) -> None:
    async with page_app(tmp_path / "data", Settings(), token=TOKEN, max_upload_bytes=1000) as p:
        big = b"customer_id,attribute,value\n" + b"1,a,b\n" * 400
        status, text, _ = await p.upload("/upload", [("big.csv", big)])
        assert status == 413
        assert "too large" in text
        assert "limit is" in text
        assert not list((p.data_dir / "uploads").iterdir())


async def test_a_file_type_the_tool_cannot_read_is_refused_by_name(page: Page) -> None:
    status, text, _ = await page.upload("/upload", [("notes.pdf", b"%PDF-1.4")])
    assert status == 400
    assert "notes.pdf: not a spreadsheet this tool reads" in text
    assert not list((page.data_dir / "uploads").iterdir())


async def test_the_dry_run_of_the_samples_counts_as_the_cli_does(page: Page) -> None:
    files = [
        (p.name, p.read_bytes()) for p in (SAMPLES / "customers.csv", SAMPLES / "customers.xlsx")
    ]
    status, text, _ = await page.upload("/upload", files)
    assert status == 200
    # `bulk-sync sync samples/customers.csv samples/customers.xlsx --dry-run` says:
    # 297 rows, 291 valid, 6 invalid; 60 customers.
    assert re.search(r"<dt>Rows read</dt><dd>297</dd>", text)
    assert re.search(r"<dt>Valid</dt><dd>291</dd>", text)
    assert re.search(r"<dt>Invalid \(not sent\)</dt><dd>6</dd>", text)
    assert "for <strong>60</strong> customers" in text
    # problems: file, sheet, row, column letter and name, message, the row's cells
    assert "customer id is empty" in text
    row = re.search(
        r"<tr>\s*<td>customers.xlsx</td><td>Clientes</td><td class=\"num\">42</td>(.*?)</tr>",
        text,
        re.S,
    )
    assert row is not None
    assert '<span class="letter">B</span> Attribute' in row.group(1)
    assert "attribute is empty" in row.group(1)
    assert "Lisboa" in row.group(1)  # the row's value cell
    # the conflict side by side
    conflict = re.search(r"<td>501644621</td><td>payment_terms_days</td>(.*?)</tr>", text, re.S)
    assert conflict is not None
    assert re.search(r"row 77</span> <span class=\"value\">30</span>", conflict.group(1))
    assert re.search(r"row 167</span> <span class=\"value\">60</span>", conflict.group(1))


async def test_problems_of_a_large_file_come_page_by_page(page: Page, tmp_path: Path) -> None:
    rows = [(str(1000 + k), "segment", "") for k in range(120)]  # 120 empty values
    content = write_csv(tmp_path / "many.csv", rows).read_bytes()
    _status, text, path = await page.upload("/upload", [("many.csv", content)])
    assert "Problems (120)" in text
    assert "Page 1 of 3" in text
    assert text.count("value is empty") == 50
    _status, text = await page.get(path + "?page=3")
    assert "Problems 101 to 120 of 120" in text
    assert ">121<" in text  # the last problem: spreadsheet row 121 (header = row 1)
    assert ">71<" not in text


async def test_other_headers_are_mapped_in_the_page_and_remembered(page: Page) -> None:
    status, text, path = await page.upload("/upload", [("clientes-crm.csv", other_headers_csv())])
    assert "missing columns" in text
    assert "Say below which columns hold them" in text
    assert '<option value="NIF">A · NIF</option>' in text  # columns by letter and name
    draft_id = path.rsplit("/", 1)[1]
    status, text = await page.post(
        f"/drafts/{draft_id}/files/0",
        {"layout": "long", "customer_id": "NIF", "attribute": "Campo", "value": "Valor"},
    )
    assert status == 200
    assert "missing columns" not in text
    assert "Read 10 rows" in text
    assert re.search(r"<dt>Invalid \(not sent\)</dt><dd>1</dd>", text)  # the empty Valor
    assert '<span class="letter">C</span> Valor' in text
    # The next file with the same headers is read with the same choice at once.
    renamed = other_headers_csv().replace(b"NIF;Campo;Valor", b"nif;campo;valor")
    status, text, _ = await page.upload("/upload", [("outro.csv", renamed)])
    assert "missing columns" not in text
    assert "Columns chosen as for an earlier file with the same headers." in text
    assert "Read 10 rows" in text


async def test_a_wide_file_is_mapped_with_one_column_per_attribute(page: Page) -> None:
    content = "Contribuinte,segmento,regiao\n500100267,Retalho,Norte\n500211358,,Centro\n"
    _status, text, path = await page.upload("/upload", [("wide.csv", content.encode())])
    assert "missing columns" in text
    draft_id = path.rsplit("/", 1)[1]
    _status, text = await page.post(
        f"/drafts/{draft_id}/files/0", {"layout": "wide", "customer_id": "Contribuinte"}
    )
    assert "Read 3 rows" in text  # 4 cells, one empty: three values
    assert "for <strong>2</strong> customers" in text


def two_sheet_workbook() -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    first = wb.active
    assert first is not None
    first.title = "Notas"
    first.append(["Instructions: the data is on the next sheet"])
    data = wb.create_sheet("Dados")
    data.append(["customer_id", "attribute", "value"])
    data.append(["1", "segment", "Retalho"])
    data.append(["2", "segment", "Serviços"])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


async def test_the_sheet_of_a_workbook_is_chosen_in_the_page(page: Page) -> None:
    _status, text, path = await page.upload("/upload", [("book.xlsx", two_sheet_workbook())])
    assert '<option value="Notas" selected>Notas</option>' in text
    assert "missing columns" in text
    draft_id = path.rsplit("/", 1)[1]
    _status, text = await page.post(f"/drafts/{draft_id}/files/0", {"sheet": "Dados"})
    assert "Read 2 rows from sheet “Dados”" in text
    _status, text = await page.post(f"/drafts/{draft_id}/files/0", {"sheet": "*all*"})
    assert "Read 2 rows from sheet “Dados”" in text  # the notes sheet is left out


async def test_an_unreadable_file_shows_the_loader_message(page: Page) -> None:
    _status, text, _ = await page.upload(
        "/upload", [("fake.xlsx", b"customer_id,attribute,value\n1,a,b\n")]
    )
    assert "fake.xlsx" in text
    assert "rename it to .csv" in text
    assert "Fix the files above to see the dry run" in text


async def test_the_confirmation_names_the_api_and_the_customers(tmp_path: Path) -> None:
    settings = Settings(base_url="https://api.example.test")
    async with page_app(tmp_path / "data", settings, token=TOKEN) as p:
        _, _, path = await p.upload(
            "/upload", [("c.csv", (SAMPLES / "customers.csv").read_bytes())]
        )
        status, text = await p.get(path + "/confirm")
        assert status == 200
        assert "https://api.example.test" in text
        assert "<strong>40 customers</strong>" in text  # as `sync --dry-run` counts them
        assert "Yes, sync now" in text
        p.assert_no_secret()


async def test_without_an_api_key_the_page_says_so_instead_of_syncing(tmp_path: Path) -> None:
    async with page_app(tmp_path / "data", Settings(), token=None) as p:
        _, _, path = await p.upload(
            "/upload", [("c.csv", (SAMPLES / "customers.csv").read_bytes())]
        )
        _status, text = await p.get(path + "/confirm")
        assert "the server has no API key" in text
        assert "IC_API_TOKEN" in text
        assert "Yes, sync now" not in text


async def test_with_a_password_every_page_asks_to_log_in(tmp_path: Path) -> None:
    password = "correct horse battery"
    async with page_app(tmp_path / "data", Settings(), token=TOKEN, password=password) as p:
        status, text = await p.get("/runs")
        assert status == 200
        assert "<h1>Log in</h1>" in text
        status, text = await p.post("/login", {"password": "wrong password", "next": "/runs"})
        assert status == 401
        assert "not right" in text
        async with p.client.post(
            "/login",
            data={"csrf_token": p.csrf, "password": password, "next": "/runs"},
            allow_redirects=False,
        ) as response:
            assert response.status == 303
            assert response.headers["Location"] == "/runs"
            cookie = response.headers["Set-Cookie"]
            assert "HttpOnly" in cookie
            assert "SameSite=Strict" in cookie
        status, text = await p.get("/runs")
        assert "History of runs" in text
        p.assert_no_secret()


def test_report_lines_helper_reads_csv() -> None:  # keeps csv imported for the helpers
    assert list(csv.reader(io.StringIO("a,b\r\n"))) == [["a", "b"]]


def test_data_dir_refuses_ids_that_are_not_its_own(tmp_path: Path) -> None:
    data = DataDir(tmp_path)
    assert data.draft("../../etc/passwd") is None
    assert data.run("..") is None
    with pytest.raises(ValueError, match="bad run id"):
        data.run_dir("../x")


def test_serve_on_a_non_loopback_host_without_a_password_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from bulk_sync.cli import cli

    monkeypatch.delenv("BULK_SYNC_WEB_PASSWORD", raising=False)
    monkeypatch.delenv("BULK_SYNC_WEB_PASSWORD_FILE", raising=False)
    public = "0.0.0.0"  # noqa: S104 - refused before anything is bound
    result = CliRunner().invoke(
        cli, ["serve", "--host", public, "--port", "0", "--data-dir", str(tmp_path / "d")]
    )
    assert result.exit_code == 2
    assert "set an access password" in result.output
    assert "BULK_SYNC_WEB_PASSWORD" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "d").exists()  # nothing was started


def test_the_access_password_comes_from_the_environment_or_a_file(tmp_path: Path) -> None:
    from bulk_sync.errors import ConfigError
    from bulk_sync.web.security import Security, read_password

    assert read_password({}) is None
    assert read_password({"BULK_SYNC_WEB_PASSWORD": "long enough"}) == "long enough"
    secret_file = tmp_path / "pw"
    secret_file.write_text("from a file\n")
    assert read_password({"BULK_SYNC_WEB_PASSWORD_FILE": str(secret_file)}) == "from a file"
    with pytest.raises(ConfigError, match="at least 8 characters"):
        read_password({"BULK_SYNC_WEB_PASSWORD": "short"})
    with pytest.raises(ConfigError, match="cannot read"):
        read_password({"BULK_SYNC_WEB_PASSWORD_FILE": str(tmp_path / "missing")})
    remote = Security.for_bind("0.0.0.0", 8765, "long enough")  # noqa: S104 - not bound
    assert remote.password == "long enough"
    assert remote.allowed_hosts == frozenset()  # reached by names this server cannot know
    local = Security.for_bind("127.0.0.1", 8765, None)
    assert "127.0.0.1:8765" in local.allowed_hosts
    assert "localhost:8765" in local.allowed_hosts
    with pytest.raises(ConfigError, match="access password"):
        Security.for_bind("192.168.1.10", 8765, None)


async def test_an_answer_that_would_hold_the_key_is_redacted(page: Page) -> None:
    # A file named after the key: its name is shown in the page, the key never is.
    status, text, _ = await page.upload("/upload", [(f"{TOKEN}.csv", b"customer_id\n")])
    assert status == 200
    assert TOKEN not in text
    assert TOKEN[:16] not in text
    assert "***.csv" in text


async def test_numbers_shown_otherwise_than_sent_are_pointed_out(page: Page) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["customer_id", "attribute", "value"])
    ws.append(["1", "credit_limit", 1234.5])
    ws["C2"].number_format = "#,##0"  # shows 1,235
    out = io.BytesIO()
    wb.save(out)
    status, text, _ = await page.upload("/upload", [("limits.xlsx", out.getvalue())])
    assert status == 200
    assert "How some numbers were read" in text
    assert "1234.5 is shown as 1,235" in text


async def test_the_start_page_points_to_the_samples_when_make_serve_says_where(
    tmp_path: Path,
) -> None:
    async with page_app(tmp_path / "data", Settings(), token=TOKEN, samples="/x/samples") as p:
        _status, text = await p.get("/")
        assert "To try the page: upload the sample files in" in text
        assert "/x/samples" in text
    async with page_app(tmp_path / "data", Settings(), token=TOKEN) as p:
        _status, text = await p.get("/")
        assert "To try the page" not in text


async def test_a_long_file_name_keeps_its_extension(page: Page) -> None:
    """A name longer than the page keeps is shortened in the middle, never losing the
    extension that says what kind of file it is (it was refused as "not a spreadsheet")."""
    name = "Clientes_" + "muito_longo_" * 20 + "2026.csv"
    content = b"customer_id,attribute,value\n1,a,b\n"
    status, text, path = await page.upload("/upload", [(name, content)])
    assert status == 200, text
    assert path.startswith("/drafts/")
    assert "not a spreadsheet" not in text
    shown = re.search(r'<span class="filename">(Clientes_[^<]*)</span>', text)
    assert shown is not None
    assert shown.group(1).endswith("2026.csv")
    assert "…" in shown.group(1)
    assert len(shown.group(1)) <= 200
    assert "Read 1 row." in text


async def test_a_binary_file_named_csv_is_refused_without_a_column_mapping(page: Page) -> None:
    """Binary data under a .csv name is not a file with other headers: the page says what
    the loader says and offers no mapping of its garbage "columns"."""
    garbage = bytes(range(256)) * 20
    status, text, _ = await page.upload("/upload", [("export.csv", garbage)])
    assert status == 200
    assert "export.csv: does not look like a text (CSV) file" in text
    assert "--encoding" not in text  # the page has no flags: what to do, in its words
    assert "save it again as CSV UTF-8" in text
    assert "are not in this file&#39;s header" not in text
    assert 'class="mapping' not in text


async def test_all_sheets_names_the_sheets_it_left_out_and_why(page: Page) -> None:
    """With "all sheets" the page reads the visible sheets that have the columns: the page names the
    others (the command line warns about them), so a hidden sheet's rows are not missed
    unnoticed."""
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(two_sheet_workbook()))
    hidden = book.create_sheet("Arquivo")
    hidden.sheet_state = "hidden"
    hidden.append(["customer_id", "attribute", "value"])
    hidden.append(["3", "segment", "Antigo"])
    out = io.BytesIO()
    book.save(out)
    _status, text, path = await page.upload("/upload", [("book.xlsx", out.getvalue())])
    draft_id = path.rsplit("/", 1)[1]
    _status, text = await page.post(f"/drafts/{draft_id}/files/0", {"sheet": "*all*"})
    assert "Read 2 rows from sheet “Dados”" in text
    assert "Left out: sheet “Notas” (without the columns), sheet “Arquivo” (hidden)." in text
    _status, text = await page.post(f"/drafts/{draft_id}/files/0", {"sheet": "Dados"})
    assert "Left out" not in text  # one sheet chosen: nothing is left out


async def test_a_file_with_other_headers_gets_advice_without_command_line_flags(
    page: Page,
) -> None:
    _status, text, _ = await page.upload("/upload", [("crm.csv", b"foo;bar;baz\n1;2;3\n")])
    assert "crm.csv: missing columns" in text
    assert "read with delimiter" in text
    assert "--delimiter" not in text
    assert "save the file again as CSV" in text


async def test_two_columns_with_the_same_header_are_said_so_not_missing_columns(
    page: Page,
) -> None:
    """Mapping the second of two "Valor" columns cannot work (a mapping names headers):
    the page says the headers repeat, not that the columns are missing."""
    content = b"NIF,Campo,Valor,Valor\n1,a,primeiro,segundo\n"
    _status, text, path = await page.upload("/upload", [("dup.csv", content)])
    draft_id = path.rsplit("/", 1)[1]
    mapping = {"layout": "long", "customer_id": "NIF", "attribute": "Campo", "value": "Valor"}
    _status, text = await page.post(f"/drafts/{draft_id}/files/0", mapping)
    assert "2 columns match &#39;value&#39;" in text
    assert "Several columns of this file have the same header." in text
    assert "are not in this file&#39;s header" not in text
