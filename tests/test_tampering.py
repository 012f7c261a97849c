"""What an operator (or an attacker) hands bulk-sync besides the input: a config file, a
report or journal to resume from or retry, a metrics label, a key (issue 11, items 7, 8,
10, 11, 13, 14, 15 and 16).

Each test is a reproducer from the issue or a neighbour of one: the run must refuse
with exit 2 and a message (never a traceback, never quoting a secret), or do the right
thing, and never send what it should not.
"""

from __future__ import annotations

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
from helpers import write_csv

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
