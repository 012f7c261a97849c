"""What an operator (or an attacker) hands bulk-sync besides the input: a config file, a
report or journal to resume from or retry, a metrics label, a key (issue 11, items 7, 8,
10, 11, 13, 14, 15 and 16).

Each test is a reproducer from the issue or a neighbour of one: the run must refuse
with exit 2 and a message (never a traceback, never quoting a secret), or do the right
thing, and never send what it should not.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bulk_sync.cli import cli
from bulk_sync.emulator import EmulatorThread
from bulk_sync.models import Status
from bulk_sync.observability import metrics_text
from bulk_sync.runner import Summary
from helpers import report_lines, write_csv

FAST = "backoff_initial: 0.001\nbackoff_max: 0.01\n"


@pytest.fixture
def run_cli(api_token: str, tmp_path: Path) -> Callable[..., Result]:
    config = tmp_path / "fast.yaml"
    config.write_text(FAST)

    def run(*args: str, token: str = api_token, config_file: Path | None = None) -> Result:
        return CliRunner().invoke(
            cli,
            [*args, "--config", str(config_file or config)],
            env={"IC_API_TOKEN": token},
            catch_exceptions=False,
        )

    return run


# -- 11.16: the metrics job label ---------------------------------------------------------------

# The Prometheus text format (exposition formats, "Text format details"): a sample line is
# a metric name, optional {label="value",...} with \\, \" and \n the only escapes, a value.
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE = re.compile(
    rf"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{{(?P<labels>{_LABEL}(?:,{_LABEL})*)?\}})? "
    r"(?P<value>\S+)"
)


def _parse_samples(text: str) -> list[tuple[str, dict[str, str], str]]:
    samples = []
    for line in text.split("\n"):
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.fullmatch(line)
        assert m, f"not a valid sample line: {line!r}"
        labels = {}
        for pair in re.findall(_LABEL, m["labels"] or ""):
            key, value = pair.split("=", 1)
            labels[key] = re.sub(r"\\(.)", lambda e: "\n" if e[1] == "n" else e[1], value[1:-1])
        samples.append((m["name"], labels, m["value"]))
    return samples


@pytest.mark.parametrize(
    "job",
    [
        'x"} 1\nbulk_sync_exit_code{job="prod"} 0\n# ',
        "back\\slash",
        'quote"only',
        "line\nbreak",
        "plain_job",
    ],
)
def test_the_metrics_job_label_is_escaped_and_cannot_forge_series(job: str) -> None:
    counts = {s.value: 0 for s in Status}
    summary = Summary(counts, 0, 0, 0, 0, 0.1, Path("r.csv"), 1, False)
    samples = _parse_samples(metrics_text(summary, job=job, now=1_800_000_000.0))
    assert samples
    assert {labels["job"] for _, labels, _ in samples} == {job}
    exit_codes = [value for name, _, value in samples if name == "bulk_sync_exit_code"]
    assert exit_codes == ["1"]


def test_the_metrics_job_label_from_the_command_line_reaches_the_file_escaped(
    tmp_path: Path, run_cli: Callable[..., Result], emulator_thread: Callable[..., EmulatorThread]
) -> None:
    server = emulator_thread()
    src = write_csv(tmp_path / "in.csv", [("C1", "plan", "")])
    metrics = tmp_path / "m.prom"
    job = 'x"} 1\nbulk_sync_exit_code{job="prod"} 0'
    result = run_cli(
        "sync", str(src), "--report", str(tmp_path / "r.csv"), "--base-url", server.base_url,
        "--metrics-file", str(metrics), "--metrics-job", job,
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    samples = _parse_samples(metrics.read_text())
    assert {labels["job"] for _, labels, _ in samples} == {job}
    assert [v for n, _, v in samples if n == "bulk_sync_exit_code"] == ["1"]


# -- 11.10, 11.11, 11.13: the config file -------------------------------------------------------

KEY = "0123456789abcdef" * 4  # the conftest's api_token


@pytest.mark.parametrize(
    "text",
    [
        f'base_url: "https://host/?api_key={KEY}"\n',
        f'columns:\n  customer_id: "Bearer: {KEY}"\n',
        f"sheet: x{KEY.upper()}y\n",
        f'columns:\n  value: "{KEY[10:42]}"\n',  # 32 characters of it, not the whole
        f'"see {KEY}": 1\n',
    ],
)
def test_a_key_inside_a_config_value_is_refused_without_quoting_it(
    tmp_path: Path, run_cli: Callable[..., Result], text: str
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    src = write_csv(tmp_path / "in.csv", [("C1", "a", "1")])
    result = run_cli("sync", str(src), "--dry-run", config_file=config)
    assert result.exit_code == 2, result.output
    assert "API key" in result.stderr
    for k in range(len(KEY) - 15):
        assert KEY[k : k + 16] not in result.output.lower()
    assert not list(tmp_path.glob("bulk-sync-report-*"))


def test_a_piece_of_a_non_hex_key_inside_a_config_value_is_refused(tmp_path: Path) -> None:
    from bulk_sync.config import load_config
    from bulk_sync.errors import ConfigError

    key = "sk_live_Zq8vN2pLmW4xYc7RtB1e"  # not hex: only the key itself can tell
    config = tmp_path / "c.yaml"
    config.write_text(f"base_url: https://api.example.com/{key[2:20]}/\n")
    with pytest.raises(ConfigError, match="API key") as caught:
        load_config(config, environ={"IC_API_TOKEN": key})
    assert key[2:20] not in str(caught.value)
    assert load_config(config, environ={"IC_API_TOKEN": "another-key-entirely"})


def test_verify_tls_is_gone_and_names_its_replacement(tmp_path: Path) -> None:
    from bulk_sync.config import load_config
    from bulk_sync.errors import ConfigError

    config = tmp_path / "c.yaml"
    config.write_text("verify_tls: false\n")
    with pytest.raises(ConfigError, match="insecure_skip_tls_verify"):
        load_config(config)
    config.write_text("insecure_skip_tls_verify: true\nca_bundle: /etc/ssl/ca.pem\n")
    with pytest.raises(ConfigError, match="contradict"):
        load_config(config)


def test_skipping_tls_checks_warns_loudly_on_every_run(
    tmp_path: Path,
    api_token: str,
    emulator_thread: Callable[..., EmulatorThread],
) -> None:
    server = emulator_thread()
    config = tmp_path / "insecure.yaml"
    config.write_text(FAST + "insecure_skip_tls_verify: true\n")
    src = write_csv(tmp_path / "in.csv", [("C1", "plan", "gold")])
    for n in (1, 2):
        result = CliRunner().invoke(
            cli,
            ["sync", str(src), "--report", str(tmp_path / f"{n}.csv"), "--base-url",
             server.base_url, "--config", str(config)],
            env={"IC_API_TOKEN": api_token},
            catch_exceptions=False,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "INSECURE: TLS certificate checks are OFF" in result.stderr


async def test_skipping_tls_checks_really_skips_them_and_is_off_by_default(
    tmp_path: Path,
) -> None:
    import ssl

    from bulk_sync.config import load_config
    from bulk_sync.runner import _make_client

    config = tmp_path / "c.yaml"
    config.write_text("base_url: https://api.example.com\n")
    for text, mode in (
        ("", ssl.CERT_REQUIRED),
        ("insecure_skip_tls_verify: true\n", ssl.CERT_NONE),
    ):
        config.write_text("base_url: https://api.example.com\n" + text)
        client = _make_client(load_config(config), "k" * 64)
        context = client._transport._ssl  # the aiohttp transport's SSL context
        assert context.verify_mode == mode
        await client.aclose()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("sheet: &a Clientes\nencoding: *a\n", "alias"),
        ("columns: &c\n  customer_id: *c\n", "alias"),  # self-reference: a traceback before
        (  # nested anchors: the key check walked 2**40 mappings
            "l0: &l0 {a: x}\n"
            + "".join(f"l{i}: &l{i} {{a: *l{i - 1}, b: *l{i - 1}}}\n" for i in range(1, 40)),
            "alias",
        ),
        ("columns: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        ("columns: " + "{a: " * 50 + "1" + "}" * 50 + "\n", "nested too deeply"),
    ],
)
def test_yaml_aliases_and_deep_nesting_are_refused_at_once(
    tmp_path: Path, text: str, fragment: str
) -> None:
    import time

    from bulk_sync.config import load_config
    from bulk_sync.errors import ConfigError

    config = tmp_path / "c.yaml"
    config.write_text(text)
    started = time.monotonic()
    with pytest.raises(ConfigError, match=fragment):
        load_config(config)
    assert time.monotonic() - started < 2.0


def test_a_config_file_over_a_mebibyte_is_refused(tmp_path: Path) -> None:
    from bulk_sync.config import load_config
    from bulk_sync.errors import ConfigError

    config = tmp_path / "c.yaml"
    config.write_text("concurrency: 4\n" + "# padding\n" * 110_000)
    with pytest.raises(ConfigError, match="larger than 1024 KiB"):
        load_config(config)
    config.write_text("concurrency: 4\n" + "# padding\n" * 1000)
    assert load_config(config).concurrency == 4


# -- 11.15: odd outcomes that must be exit 2 ----------------------------------------------------


def test_a_deeply_nested_journal_line_is_exit_2_naming_the_line(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    src = write_csv(tmp_path / "in.csv", [("C1", "a", "1")])
    journal = tmp_path / "old.csv.journal.jsonl"
    journal.write_text(
        '{"bulk_sync_journal": 1, "columns": []}\n' + "[" * 200_000 + "]" * 200_000 + "\n"
        '["in.csv", "", 2, "C1", "a", "1", "ok", 200, "", 1]\n'
    )
    result = run_cli("sync", str(src), "--dry-run", "--resume", str(journal))
    assert result.exit_code == 2, result.output
    assert "row 2" in result.stderr
    assert "Traceback" not in result.output


def test_a_file_that_is_not_a_journal_is_refused_without_showing_its_content(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    src = write_csv(tmp_path / "in.csv", [("C1", "a", "1")])
    secret = tmp_path / "secrets.env.journal.jsonl"
    secret.write_text("IC_API_TOKEN=hunter2hunter2\nOTHER=1\n")
    result = run_cli("sync", str(src), "--dry-run", "--resume", str(secret))
    assert result.exit_code == 2, result.output
    assert "not a bulk_sync journal" in result.stderr
    assert "hunter2" not in result.output


@pytest.mark.parametrize("token", ["abc\ndef" + "0" * 30, "ключ" * 16, "a b" * 20])
def test_a_key_that_cannot_be_sent_is_exit_2_and_nothing_is_written(
    tmp_path: Path, run_cli: Callable[..., Result], token: str
) -> None:
    src = write_csv(tmp_path / "in.csv", [("C1", "a", "1")])
    out = tmp_path / "out"
    out.mkdir()
    report = out / "r.csv"
    result = run_cli(
        "sync", str(src), "--report", str(report), "--base-url", "http://127.0.0.1:9",
        token=token,
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "cannot be sent" in result.stderr
    assert list(out.iterdir()) == []
    # retry too
    old = out / "old.csv"
    old.write_text(
        "source,sheet,row,customer_id,attribute,value,status,http_status,error,attempts\r\n"
        "in.csv,,2,C1,a,1,failed,500,boom,5\r\n"
    )
    result = run_cli(
        "retry", str(old), "--report", str(report), "--base-url", "http://127.0.0.1:9",
        token=token,
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert sorted(p.name for p in out.iterdir()) == ["old.csv"]


# -- 11.7: --resume is tied to the API it was made against ---------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".csv.journal.jsonl"])
def test_a_rehearsal_report_cannot_make_a_production_run_skip_everything(
    tmp_path: Path,
    run_cli: Callable[..., Result],
    emulator_thread: Callable[..., EmulatorThread],
    suffix: str,
) -> None:
    rehearsal, production = emulator_thread(), emulator_thread()
    rows = [("C1", "plan", "gold"), ("C2", "plan", "silver")]
    src = write_csv(tmp_path / "in.csv", rows)
    report = tmp_path / ("rehearsal" + (".xlsx" if suffix == ".xlsx" else ".csv"))
    result = run_cli("sync", str(src), "--report", str(report), "--base-url", rehearsal.base_url)
    assert result.exit_code == 0, result.output
    resume = report
    if suffix.endswith(".jsonl"):  # as a killed run leaves it: the journal only
        from bulk_sync.report import Journal, read_report

        resume = tmp_path / "killed.csv.journal.jsonl"
        header = {"report": "killed.csv", "base_url": rehearsal.base_url}
        with Journal.open(resume, header) as journal:
            journal.append([dataclasses.astuple(r) for r in read_report(report)])

    out = tmp_path / "prod.csv"
    result = run_cli(
        "sync", str(src), "--resume", str(resume), "--report", str(out), "--base-url",
        production.base_url,
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f"was made against {rehearsal.base_url}" in result.stderr
    assert "--resume-any-url" in result.stderr
    assert production.state.requests_total == 0
    assert not out.exists()
    # a dry run says the same
    result = run_cli(
        "sync", str(src), "--resume", str(resume), "--dry-run", "--base-url", production.base_url
    )
    assert result.exit_code == 2, result.output
    # the operator who knows better says so
    result = run_cli(
        "sync", str(src), "--resume", str(resume), "--report", str(out), "--base-url",
        production.base_url, "--resume-any-url",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "--resume-any-url" in result.stderr  # warned
    assert production.state.requests_total == 0  # skipped, as asked


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_resuming_against_the_same_api_skips_what_was_done(
    tmp_path: Path,
    run_cli: Callable[..., Result],
    emulator_thread: Callable[..., EmulatorThread],
    suffix: str,
) -> None:
    server = emulator_thread(customers=frozenset({"C1"}))
    src = write_csv(tmp_path / "in.csv", [("C1", "plan", "gold"), ("C2", "plan", "silver")])
    first = tmp_path / f"first{suffix}"
    result = run_cli("sync", str(src), "--report", str(first), "--base-url", server.base_url)
    assert result.exit_code == 1, result.output  # C2 unknown: 404
    before = server.state.requests_total
    # The same API written with a trailing slash.
    result = run_cli(
        "sync", str(src), "--resume", str(first), "--report", str(tmp_path / "second.csv"),
        "--base-url", server.base_url + "/",
    )  # fmt: skip
    assert result.exit_code == 1, result.output  # C2 still unknown
    assert server.state.requests_total == before + 1  # only C2 was sent again
    assert [r["status"] for r in report_lines(tmp_path / "second.csv")] == ["skipped", "failed"]
    assert "other input files" not in result.stderr


def test_a_report_that_does_not_say_its_api_is_refused_unless_told(
    tmp_path: Path, run_cli: Callable[..., Result], emulator_thread: Callable[..., EmulatorThread]
) -> None:
    server = emulator_thread()
    src = write_csv(tmp_path / "in.csv", [("C1", "plan", "gold"), ("C2", "plan", "silver")])
    head = "source,sheet,row,customer_id,attribute,value,status,http_status,error,attempts\r\n"
    old = tmp_path / "old.csv"  # as an older bulk-sync wrote it: no old.csv.meta.json
    old.write_text(head + "in.csv,,2,C1,plan,gold,ok,200,,1\r\n")
    out = tmp_path / "out.csv"
    args = ["sync", str(src), "--resume", str(old), "--report", str(out), "--base-url",
            server.base_url]  # fmt: skip
    result = run_cli(*args)
    assert result.exit_code == 2, result.output
    assert "does not say which API" in result.stderr
    assert server.state.requests_total == 0
    result = run_cli(*args, "--resume-any-url")
    assert result.exit_code == 0, result.output
    assert server.state.posts_by_customer == {"C2": 1}
    # A report with nothing done skips nothing: it needs no check.
    nothing = tmp_path / "nothing.csv"
    nothing.write_text(head + "in.csv,,2,C1,plan,gold,failed,500,boom,5\r\n")
    result = run_cli(
        "sync", str(src), "--resume", str(nothing), "--report", str(tmp_path / "n.csv"),
        "--base-url", server.base_url,
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def test_resuming_with_other_input_files_warns_and_names_them(
    tmp_path: Path, run_cli: Callable[..., Result], emulator_thread: Callable[..., EmulatorThread]
) -> None:
    import json

    server = emulator_thread()
    src = write_csv(tmp_path / "in.csv", [("C1", "plan", "gold")])
    first = tmp_path / "first.csv"
    assert run_cli("sync", str(src), "--report", str(first), "--base-url", server.base_url)
    meta = json.loads((tmp_path / "first.csv.meta.json").read_text())
    assert meta["base_url"] == server.base_url
    [identity] = meta["input files"]
    assert identity["file"] == "in.csv"
    assert identity["bytes"] == src.stat().st_size
    assert len(identity["sha256"]) == 64
    write_csv(tmp_path / "in.csv", [("C1", "plan", "gold"), ("C2", "plan", "new")])
    result = run_cli(
        "sync", str(src), "--resume", str(first), "--report", str(tmp_path / "second.csv"),
        "--base-url", server.base_url,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "other input files" in result.stderr
    assert server.state.posts_by_customer == {"C1": 1, "C2": 1}


def test_the_same_api_is_recognised_however_its_url_is_written() -> None:
    from bulk_sync.provenance import same_api

    assert same_api("https://api.example.com", "HTTPS://API.Example.com:443/")
    assert same_api("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1/")
    assert not same_api("https://api.example.com", "http://api.example.com")
    assert not same_api("http://127.0.0.1:8080", "http://127.0.0.1:8081")
    assert not same_api("https://api.example.com/v1", "https://api.example.com/v2")
    assert not same_api("https://api.example.com", "https://api.example.com.evil.io")


# -- 11.14: a report read back by retry or --resume has the loader's zip-bomb guard ---------------


def _report_sheet_xml(*, dimension: str = "", extra: str = "") -> str:
    """A report's sheet XML (inline strings): the header and one failed row, then ``extra``."""
    from bulk_sync.models import REPORT_COLUMNS
    from test_bad_input import _NS

    def inline(r: int, values: list[str]) -> str:
        cells = "".join(
            f'<c r="{chr(65 + k)}{r}" t="inlineStr"><is><t>{v}</t></is></c>'
            for k, v in enumerate(values)
        )
        return f'<row r="{r}">{cells}</row>'

    return (
        f'<?xml version="1.0" encoding="UTF-8"?><worksheet {_NS}>'
        + (f'<dimension ref="{dimension}"/>' if dimension else "")
        + "<sheetData>"
        + inline(1, list(REPORT_COLUMNS))
        + inline(2, ["in.csv", "", "2", "C1", "a", "1", "failed", "500", "boom", "5"])
        + extra
        + "</sheetData></worksheet>"
    )


def _report_bomb(path: Path, megabytes: int) -> Path:
    """A small .xlsx shaped like a report whose shared strings unpack to ``megabytes``."""
    from test_bad_input import handmade_xlsx, millions_of_strings

    sheet = _report_sheet_xml()
    return handmade_xlsx(path, shared_strings=millions_of_strings(megabytes), sheet=sheet)


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", ["retry", "resume"])
def test_a_report_that_is_a_zip_bomb_is_refused_in_bounded_time_and_memory(
    tmp_path: Path, command: str
) -> None:
    import time

    from test_bad_input import run_process

    bomb = _report_bomb(tmp_path / "old.xlsx", 150)
    assert bomb.stat().st_size < 2 * 1024 * 1024
    src = write_csv(tmp_path / "in.csv", [("C1", "a", "1")])
    args = (
        ["retry", str(bomb), "--dry-run"]
        if command == "retry"
        else ["sync", str(src), "--resume", str(bomb), "--dry-run"]
    )
    started = time.monotonic()
    code, out, err, peak_kib = run_process([*args, "--report", str(tmp_path / "r.csv")], tmp_path)
    assert code == 2, err
    assert "zip bomb" in err
    assert "old.xlsx" in err
    assert "Traceback" not in err + out
    assert time.monotonic() - started < 10
    assert peak_kib < 400 * 1024, f"peak memory {peak_kib // 1024} MiB"


@pytest.mark.timeout(60)
def test_a_report_declaring_a_cell_at_xfd1048576_is_refused_at_once(tmp_path: Path) -> None:
    """A 1 KB report with rows 1, 2 and 1,048,576 and a cell at XFD: openpyxl padded every
    row to 16,384 cells and yielded every row between (minutes and gigabytes)."""
    import time
    import zipfile

    from bulk_sync.errors import InputError
    from bulk_sync.runner import retry_tables
    from test_bad_input import _CT, _RELS, _WORKBOOK, _WORKBOOK_RELS

    sheet = _report_sheet_xml(
        dimension="A1:XFD1048576",
        extra='<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row>',
    )
    report = tmp_path / "old.xlsx"
    with zipfile.ZipFile(report, "w", zipfile.ZIP_DEFLATED) as z:
        no_strings = '<Override PartName="/xl/sharedStrings.xml"'
        z.writestr("[Content_Types].xml", _CT.split(no_strings)[0] + "</Types>")
        z.writestr("_rels/.rels", _RELS)
        z.writestr("xl/workbook.xml", _WORKBOOK)
        z.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS.split('<Relationship Id="rId2"')[0]
                   + "</Relationships>")  # fmt: skip
        z.writestr("xl/worksheets/sheet1.xml", sheet)
    started = time.monotonic()
    with pytest.raises(InputError, match="blank rows in a row"):
        retry_tables(report)
    assert time.monotonic() - started < 10


# -- 11.8: values longer than an Excel cell -----------------------------------------------------


def test_retry_never_sends_a_value_cut_to_fit_an_excel_cell(
    tmp_path: Path, run_cli: Callable[..., Result], emulator_thread: Callable[..., EmulatorThread]
) -> None:
    from openpyxl import load_workbook

    from bulk_sync.report import read_report

    long_value = "".join(chr(0x41 + k % 26) for k in range(40_003))
    src = write_csv(tmp_path / "in.csv", [("C1", "essay", long_value), ("C2", "plan", "gold")])
    first = emulator_thread(customers=frozenset({"C2"}))  # C1 unknown: its row fails
    report = tmp_path / "first.xlsx"
    result = run_cli("sync", str(src), "--report", str(report), "--base-url", first.base_url)
    assert result.exit_code == 1, result.output
    twin = tmp_path / "first.xlsx.full.csv"
    assert str(twin) in result.stderr  # the warning names it
    # The XLSX cell holds what Excel can, and says it is cut and where the rest is.
    wb = load_workbook(report, read_only=True)
    cell = next(wb["report"].iter_rows(min_row=2, max_row=2, values_only=True))[5]
    wb.close()
    assert len(cell) <= 32_767
    assert cell.startswith(long_value[:30_000])
    assert cell.endswith("40003 characters in all, more than an Excel cell holds; "
                         "the whole text is in first.xlsx.full.csv]")  # fmt: skip
    # The twin holds every line, whole.
    assert [r.value for r in read_report(twin)] == [long_value, "gold"]
    assert [r.status.value for r in read_report(twin)] == ["failed", "ok"]

    second = emulator_thread()
    result = run_cli("retry", str(report), "--base-url", second.base_url)
    assert result.exit_code == 2, result.output
    assert "was cut to fit an Excel cell (40,003 characters in all)" in result.stderr
    assert "first.xlsx.full.csv" in result.stderr
    assert second.state.requests_total == 0
    # From the twin, the value goes whole.
    result = run_cli(
        "retry", str(twin), "--report", str(tmp_path / "again.csv"), "--base-url",
        second.base_url,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert second.state.customers == {"C1": {"essay": long_value}}


def test_an_xlsx_report_without_long_texts_has_no_twin_and_escapes_are_never_split(
    tmp_path: Path,
) -> None:
    from bulk_sync.report import XL_CELL_LIMIT, cut_note, read_report, write_report

    assert (
        write_report(tmp_path / "r.xlsx", [("a.csv", "", 2, "C1", "a", "v", "ok", 200, "", 1)]) == 0
    )
    # Control characters become 7-character escapes: a cut never falls inside one.
    for pad in range(7):
        value = "x" * pad + "\x01" * 5000  # 35,000+ characters once escaped
        path = tmp_path / f"c{pad}.xlsx"
        assert write_report(path, [("a.csv", "", 2, "C1", "a", value, "failed", 500, "", 1)]) == 1
        [row] = read_report(path)
        note = cut_note(row.value)
        assert note == (len(value), f"c{pad}.xlsx.full.csv")
        body = row.value[: row.value.index(" [...cut by bulk-sync")]
        assert value.startswith(body)
        assert len(body) > (XL_CELL_LIMIT - 200) // 7
    # a note claiming a whole shorter than what is left is not one
    assert cut_note("short [...cut by bulk-sync: 3 characters in all, more than an Excel "
                    "cell holds; the whole text is in x.csv]") is None  # fmt: skip
