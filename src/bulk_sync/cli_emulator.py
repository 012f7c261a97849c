"""``bulk-sync emulator``: run the local stand-in API (see :mod:`bulk_sync.emulator`).

The main CLI group registers :data:`emulator`; it also runs on its own with
``python -m bulk_sync.cli_emulator``.
"""

from __future__ import annotations

from pathlib import Path

import click

from bulk_sync.customers import CustomerDirectory, read_customer_file
from bulk_sync.emulator import EmulatorSettings, EmulatorState, serve
from bulk_sync.errors import ConfigError

__all__ = ["emulator"]

_RATE = click.FloatRange(0.0, 1.0)
_SECONDS = click.FloatRange(min=0.0)
_POSITIVE_INT = click.IntRange(min=1)


class _CannotStart(click.ClickException):
    exit_code = 2


def read_customers(path: Path) -> CustomerDirectory:
    """Customers from a file: ``gid`` or ``gid,externalId`` a line (blank lines and
    ``#`` comments ignored); see :mod:`bulk_sync.customers`."""
    try:
        return read_customer_file(path)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--customers") from None


@click.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port to listen on; 0 picks a free one (printed at start).",
)
@click.option(
    "--token",
    envvar="IC_EMULATOR_TOKEN",
    default=None,
    help="Bearer token to require [env IC_EMULATOR_TOKEN]; without it any token is accepted.",
)
@click.option(
    "--customers",
    "customers_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="File of the customers that exist, one a line: 'gid' or 'gid,externalId' (either "
    "id then addresses the customer); others get 404. Default: every id exists.",
)
@click.option("--latency", type=_SECONDS, default=0.0, help="Seconds added to every answer.")
@click.option("--jitter", type=_SECONDS, default=0.0, help="Random extra seconds, up to this.")
@click.option("--error-rate", type=_RATE, default=0.0, help="Fraction of requests answered 503.")
@click.option("--throttle-rate", type=_RATE, default=0.0, help="Fraction of requests answered 429.")
@click.option(
    "--retry-after",
    type=_SECONDS,
    default=1.0,
    show_default=True,
    help="Retry-After seconds sent with injected 429s.",
)
@click.option(
    "--drop-rate", type=_RATE, default=0.0, help="Fraction of connections closed unanswered."
)
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0.0, min_open=True),
    default=None,
    help="Requests per second accepted; beyond it 429 with Retry-After.",
)
@click.option(
    "--rate-burst",
    type=click.FloatRange(min=1.0),
    default=None,
    help="Token-bucket size of --rate-limit: requests accepted at once after a quiet "
    "spell [one second's worth].",
)
@click.option(
    "--capacity",
    type=_POSITIVE_INT,
    default=None,
    help="Requests in flight at once; more get 429 with Retry-After (--retry-after) at "
    "once, without the latency.",
)
@click.option(
    "--outage-after",
    type=click.IntRange(min=0),
    default=None,
    metavar="K",
    help="Start an outage once K requests were accepted (0: with the first request).",
)
@click.option(
    "--outage-seconds",
    type=click.FloatRange(min=0.0, min_open=True),
    default=None,
    metavar="S",
    help="How long the outage lasts [for ever].",
)
@click.option(
    "--outage-mode",
    type=click.Choice(["503", "refuse"]),
    default="503",
    show_default=True,
    help="During the outage: 503 to every request at once, or refuse connections "
    "(the port is closed; requests on open connections are dropped).",
)
@click.option("--max-value-length", type=_POSITIVE_INT, default=None, help="Longer values: 422.")
@click.option("--max-key-length", type=_POSITIVE_INT, default=None, help="Longer names: 422.")
@click.option("--max-keys", type=_POSITIVE_INT, default=None, help="More pairs per call: 422.")
@click.option("--seed", type=int, default=None, help="Seed for reproducible faults.")
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="JSON file of every customer's attributes: loaded at start, saved while running.",
)
def emulator(
    host: str,
    port: int,
    token: str | None,
    customers_file: Path | None,
    latency: float,
    jitter: float,
    error_rate: float,
    throttle_rate: float,
    retry_after: float,
    drop_rate: float,
    rate_limit: float | None,
    rate_burst: float | None,
    capacity: int | None,
    outage_after: int | None,
    outage_seconds: float | None,
    outage_mode: str,
    max_value_length: int | None,
    max_key_length: int | None,
    max_keys: int | None,
    seed: int | None,
    state_file: Path | None,
) -> None:
    """Local stand-in for the Invisible Collector API, for rehearsals and tests.

    Serves POST/GET /customers/{id}/attributes like the real API, plus
    GET /_emulator/customers and GET /_emulator/stats for inspection. Stops on
    Ctrl-C or SIGTERM, saving --state-file.

    \b
    To rehearse an API at its limits:
      --capacity 48 --latency 0.05     48 requests in flight at most; beyond, 429
      --rate-limit 100 --rate-burst 20 a token bucket: 100 requests/s, bursts of 20
      --outage-after 1000 --outage-seconds 20
                                       503 to everything for 20 s once 1,000
                                       requests were accepted
      --outage-after 0 --outage-mode refuse
                                       the port closed from the first request on
    """
    if error_rate + throttle_rate + drop_rate > 1.0:
        raise click.BadParameter(
            "--error-rate + --throttle-rate + --drop-rate must not exceed 1",
            param_hint="--error-rate/--throttle-rate/--drop-rate",
        )
    customers = read_customers(customers_file) if customers_file is not None else None
    try:
        settings = EmulatorSettings(
            host=host,
            port=port,
            token=token or None,
            customers=customers,
            latency=latency,
            jitter=jitter,
            error_rate=error_rate,
            throttle_rate=throttle_rate,
            retry_after=retry_after,
            drop_rate=drop_rate,
            rate_limit=rate_limit,
            rate_burst=rate_burst,
            capacity=capacity,
            outage_after=outage_after,
            outage_seconds=outage_seconds,
            outage_mode=outage_mode,
            max_key_length=max_key_length,
            max_value_length=max_value_length,
            max_keys=max_keys,
            seed=seed,
            state_file=state_file,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None

    auth = "token required" if settings.token else "any token accepted"
    if customers is None:
        known = "every customer id exists"
    else:
        known = f"{len(customers)} customer{'' if len(customers) == 1 else 's'}"
        if customers.external:
            known += f", {len(customers.external)} with an external id"

    limits = []
    if capacity is not None:
        limits.append(f"capacity {capacity}")
    if rate_limit is not None:
        limits.append(f"rate limit {rate_limit:g}/s")
    if outage_after is not None:
        how_long = f"{outage_seconds:g} s" if outage_seconds is not None else "for ever"
        limits.append(f"outage ({outage_mode}) after {outage_after} accepted, {how_long}")
    extra = "".join(f"; {item}" for item in limits)

    def ready(base_url: str) -> None:
        click.echo(f"bulk-sync emulator listening on {base_url} ({auth}; {known}{extra})", err=True)

    def stopped(state: EmulatorState) -> None:
        saved = f"; state saved to {settings.state_file}" if settings.state_file else ""
        click.echo(f"bulk-sync emulator stopped ({state.requests_total} requests{saved})", err=True)

    try:
        serve(settings, ready, on_stop=stopped)
    except ConfigError as exc:  # an unreadable state file
        raise click.BadParameter(str(exc), param_hint="--state-file") from None
    except OSError as exc:  # address in use, cannot bind, state file not writable
        raise _CannotStart(f"cannot run the emulator: {exc}") from None


if __name__ == "__main__":
    emulator()
