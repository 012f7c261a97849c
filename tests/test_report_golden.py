"""The report, byte for byte: pinned against files written by the code as it was before
the compact-rows work (issue 14), so that keeping rows in Arrow arrays, partitioning or
sharding cannot change a single byte of what users get.

Four runs over the same inputs (three CSV files taking both CSV readers, a workbook of
two sheets), each written as a CSV report and as an XLSX report:

- ``dry``: dry run, conflicts are errors: ``valid``, ``invalid``;
- ``shard``: the same with ``--shard 1/3``: only that shard's rows;
- ``sync``: a real sync against the emulator over loopback, ``--on-conflict last``, with
  404 and 422 answers and the credentials rejected half-way: ``ok``, ``failed`` (404,
  422 isolated to the bad pair), ``not_sent``, ``skipped`` (superseded), ``invalid``;
- ``state``: again with the state the ``sync`` run left: ``skipped`` (unchanged), ``ok``;
- ``resume``: again with ``--resume`` of the ``sync`` report: ``skipped`` (resumed), ``ok``.

Set ``BULK_SYNC_WRITE_GOLDEN=1`` to write the expected files anew (only when a change of
the report is intended, and say so in the commit).
"""

from __future__ import annotations

import asyncio
import os
import re
import zipfile
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path

from bulk_sync.client import Client
from bulk_sync.config import Settings
from bulk_sync.emulator import EmulatorSettings, running_emulator
from bulk_sync.errors import AuthError
from bulk_sync.runner import Shard, sync_async
from bulk_sync.state import StateStore

GOLDEN = Path(__file__).parent / "golden"
WRITE = os.environ.get("BULK_SYNC_WRITE_GOLDEN") == "1"
TOKEN = "5" * 64

A_CSV = (
    "Customer ID,Attribute,Value,notes\r\n"
    "C1,name,Ana,first\r\n"
    'C1,city,"Lisboa, PT",\r\n'
    'C1,note,"line one\nline two",\r\n'
    "C2,formula,=SUM(A1:A2),\r\n"
    "C2,phone,+351 912 345 678,\r\n"
    "C2,balance,-5,\r\n"
    'C2,quote,"she said ""hi""",\r\n'
    "C3,empty,,\r\n"
    "C3,ctrl,a\x01b,\r\n"
    "C4,dup,same,\r\n"
    "C4,dup,same,\r\n"
    "C5,tier,gold,\r\n"
    "C5,tier,silver,\r\n"
    ".,x,y,\r\n"
    "NOPE,a,b,\r\n"
    "C6,big,this value is far too long for the api,\r\n"
    "C6,small,fine,\r\n"
    "C6,apostrophe,'quoted,\r\n"
    "C7,city,São Paulo 🌞,\r\n"
)

# cp1252, semicolons, blank lines and a ragged record: the exact (Python csv) reader.
B_CSV = (
    "customer_id;attribute;value\r\n"
    "\r\n"
    "C1;city;Évora\r\n"
    "C10;x;1;extra\r\n"
    "\r\n"
    "C10;y;@handle\r\n"
    "C11; spaced ; trimmed \r\n"
    "C5;tier;bronze\r\n"
).encode("cp1252")

# Rows grouped by customer, no quotes: pyarrow's reader with a range of row numbers.
C_CSV = "".join(
    ["customer_id,attribute,value\n"]
    + [f"K{k:03d},attr_{j},value {k}-{j}\n" for k in range(40) for j in range(3)]
)


def _workbook(path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Jan"
    ws.append(["Clientes 2026"])
    ws.append([])
    ws.append(["customer_id", "attribute", "value"])
    ws.append(["C20", "since", date(2024, 5, 1)])
    ws.append(["C20", "score", 3.5])
    ws.append(["C20", "count", 12345])
    ws.append([None, None, None])
    ws.append(["C21", "active", True])
    ws.append(["C21", "stamp", datetime(2024, 5, 1, 13, 45, 10)])
    ws.append([12345, "numeric id", "-1+2"])
    fev = wb.create_sheet("Fev")
    fev.append(["Customer ID", "Attribute", "Value"])
    fev.append(["C1", "name", "Ana"])
    fev.append(["C22", "#N/A", "#DIV/0!"])
    fev.append(["C23", "note", "\ttabbed"])
    fev.append(["STOP", "a", "b"])
    fev.append(["C8", "a", "after the halt"])
    fev.append(["C9", "a", "also after"])
    wb.save(path)


def _inputs(folder: Path) -> list[Path]:
    folder.mkdir()
    a = folder / "a.csv"
    a.write_bytes(A_CSV.encode("utf-8"))
    b = folder / "b.csv"
    b.write_bytes(B_CSV)
    c = folder / "c.csv"
    c.write_text(C_CSV, encoding="utf-8")
    book = folder / "book.xlsx"
    _workbook(book)
    return [a, b, c, book]


class HaltsAtStop:
    """The real client, except that customer ``STOP`` gets its credentials rejected."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def set_customer_attributes(
        self, customer_id: str, attributes: Mapping[str, str]
    ) -> dict[str, str]:
        if customer_id == "STOP":
            raise AuthError("credentials rejected", status=401, customer_id=customer_id)
        return await self.client.set_customer_attributes(customer_id, attributes)


async def _no_wait(_: float) -> None:
    await asyncio.sleep(0)


async def _scenarios(tmp_path: Path, suffix: str) -> dict[str, Path]:
    inputs = _inputs(tmp_path / "in")
    known = frozenset(
        ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9", "C10", "C11", "12345"]
        + [f"C2{k}" for k in range(4)]
        + [f"K{k:03d}" for k in range(40)]
    )
    settings = Settings(concurrency=1, all_sheets=True, max_attempts=2)
    last = Settings(concurrency=1, all_sheets=True, max_attempts=2, on_conflict="last")
    names = ("dry", "shard", "sync", "state", "resume")
    out = {name: tmp_path / f"{name}{suffix}" for name in names}
    emulator = EmulatorSettings(port=0, token=TOKEN, customers=known, max_value_length=20)
    async with running_emulator(emulator) as emu, Client(emu.base_url, TOKEN) as client:
        sender = HaltsAtStop(client)
        await sync_async(inputs, settings, report=out["dry"], dry_run=True)
        await sync_async(inputs, settings, report=out["shard"], dry_run=True, shard=Shard(1, 3))
        state_db = tmp_path / "state.db"
        with StateStore.open(state_db, scope=emu.base_url) as state:
            first = await sync_async(
                inputs, last, report=out["sync"], sender=sender, state=state, sleep=_no_wait
            )
        assert first.aborted
        with StateStore.open(state_db, scope=emu.base_url) as state:
            await sync_async(
                inputs, last, report=out["state"], sender=client, state=state, sleep=_no_wait
            )
        await sync_async(
            inputs, last, report=out["resume"], sender=client, resume=out["sync"], sleep=_no_wait
        )
    return out


_VOLATILE = ("written", "inputs", "base_url", "input files")


def _xlsx_parts(path: Path) -> dict[str, bytes]:
    """Every part of the workbook, with the summary's run-specific values masked and
    the document properties (creation time) left out."""
    parts: dict[str, bytes] = {}
    with zipfile.ZipFile(path) as z:
        for name in sorted(z.namelist()):
            if name == "docProps/core.xml":
                continue
            data = z.read(name)
            if name == "xl/worksheets/sheet2.xml":  # summary: key, value
                text = data.decode("utf-8")
                for key in _VOLATILE:
                    text = re.sub(
                        f"(<t>{key}</t></is></c><c [^>]*><is><t>)[^<]*(</t>)", r"\1*\2", text
                    )
                data = text.encode("utf-8")
            parts[name] = data
    return parts


def _check(name: str, actual: bytes) -> None:
    expected_path = GOLDEN / name
    if WRITE:
        expected_path.parent.mkdir(parents=True, exist_ok=True)
        expected_path.write_bytes(actual)
    assert expected_path.exists(), f"{expected_path} missing: run with BULK_SYNC_WRITE_GOLDEN=1"
    assert actual == expected_path.read_bytes(), f"{name} differs from the pinned report"


def test_csv_reports_are_byte_identical_to_the_pinned_ones(tmp_path: Path) -> None:
    reports = asyncio.run(_scenarios(tmp_path, ".csv"))
    for name, path in reports.items():
        _check(f"report-{name}.csv", path.read_bytes())
    # The scenarios reach every status (or the pins would pin less than they claim).
    seen = b"".join(p.read_bytes() for p in reports.values())
    for status in (b",ok,", b",skipped,", b",valid,", b",invalid,", b",failed,", b",not_sent,"):
        assert status in seen


def test_xlsx_reports_are_identical_to_the_pinned_ones_part_by_part(tmp_path: Path) -> None:
    reports = asyncio.run(_scenarios(tmp_path, ".xlsx"))
    for name, path in reports.items():
        for part, data in _xlsx_parts(path).items():
            flat = part.replace("/", "__")
            # Sheets and workbook (filter ranges) are the run's own; styles, theme... are shared.
            own = part.startswith("xl/worksheets/") or part == "xl/workbook.xml"
            folder = f"report-{name}.xlsx" if own else "xlsx-common"
            _check(f"{folder}/{flat}", data)


def test_the_pinned_scenarios_cover_what_they_claim() -> None:
    """Read the pinned CSVs as a user would: each run shows the statuses it is for."""
    import csv

    def statuses(name: str) -> set[str]:
        with (GOLDEN / f"report-{name}.csv").open(newline="", encoding="utf-8") as f:
            return {r["status"] for r in csv.DictReader(f)}

    assert statuses("dry") == {"valid", "invalid"}
    dry = (GOLDEN / "report-dry.csv").read_bytes()
    shard = (GOLDEN / "report-shard.csv").read_bytes()
    assert 0 < shard.count(b"\r\n") < dry.count(b"\r\n")
    assert statuses("sync") >= {"ok", "failed", "not_sent", "skipped", "invalid"}
    with (GOLDEN / "report-state.csv").open(newline="", encoding="utf-8") as f:
        errors = {r["error"] for r in csv.DictReader(f)}
    assert any("unchanged" in e for e in errors)
    with (GOLDEN / "report-resume.csv").open(newline="", encoding="utf-8") as f:
        errors = {r["error"] for r in csv.DictReader(f)}
    assert "already sent (resume)" in errors
