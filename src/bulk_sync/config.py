"""Settings: defaults, then a YAML file, then command-line flags (last wins).

The API key is never a setting: it comes from the environment variable named by
``token_env`` (default ``IC_API_TOKEN``). A config file that seems to hold a key is
refused with a message pointing at the environment variable: anywhere in it, as a
whole value or inside one (``https://host/?api_key=<key>``), or as a setting's name.

A config file is small, plain YAML: at most :data:`MAX_CONFIG_BYTES`, without aliases
(``*name``: nested anchors can make a tiny file expand exponentially) and nested no
deeper than :data:`MAX_CONFIG_DEPTH`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from bulk_sync.errors import ConfigError
from bulk_sync.redaction import Redactor

DEFAULT_BASE_URL = "https://api.invisiblecollector.com"
DEFAULT_TOKEN_ENV = "IC_API_TOKEN"  # noqa: S105 - a variable name, not a secret

OnConflict = Literal["error", "last"]
LogFormat = Literal["text", "json"]

# 32 or more hex digits anywhere in a text: the shape of an API key (64 hex digits).
_TOKEN_LIKE = re.compile(r"[0-9a-fA-F]{32,}")
_SECRET_KEYS = {"token", "api_token", "api_key", "apikey", "key", "secret", "password"}
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_DEPTH = 10
RENAMED = {
    "verify_tls": (
        "verify_tls was removed: certificates are always verified. To trust a private CA, "
        "set ca_bundle. Only if you must talk to a server whose certificate cannot be "
        "verified (never in production), set insecure_skip_tls_verify: true"
    ),
}


@dataclass(frozen=True)
class Settings:
    """Everything a run can be told. Field names are also the YAML keys."""

    base_url: str = DEFAULT_BASE_URL
    token_env: str = DEFAULT_TOKEN_ENV
    concurrency: int | Literal["auto"] = 8  # a ceiling: the window adapts below it
    max_outage: float = 900.0  # seconds the API may be unavailable before the run stops
    breaker_threshold: int = 10  # retriable failures in a row that mean the API is down
    probe_interval: float = 1.0  # first wait before probing a down API (then doubling)
    probe_interval_max: float = 10.0  # the longest wait between two probes
    rate: float | None = None
    max_attempts: int = 5
    deadline: float | None = 600.0  # seconds one request may keep retrying
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    timeout: float = 30.0
    connect_timeout: float = 10.0
    grace_period: float = 2.0  # seconds in-flight requests get after SIGINT/SIGTERM
    max_attributes_per_request: int | None = None
    on_conflict: OnConflict = "error"
    # gid,externalId lines: rows naming one customer by its two ids are checked for
    # conflicts (see bulk_sync.customers)
    customer_map: Path | None = None
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    all_sheets: bool = False
    wide: bool = False
    columns: Mapping[str, str] = field(default_factory=dict)
    cells: str = "exact"  # "as_shown": display-only number formats sent as shown
    max_customer_id_length: int | None = None
    max_attribute_length: int | None = None
    max_value_length: int | None = None
    state: Path | None = None
    lock: Path | None = None
    transport: str = "aiohttp"
    allow_insecure_http: bool = False
    # Certificates are not checked: anyone on the path can pose as the API and take the
    # key. Config file only, never a flag; every run that sends says so loudly.
    insecure_skip_tls_verify: bool = False
    ca_bundle: Path | None = None
    log_format: LogFormat = "text"
    summary_json: Path | None = None
    metrics_file: Path | None = None
    metrics_job: str = "bulk_sync"  # the job label of the metrics (one per job on a host)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied; ``None`` values are ignored (unset flags)."""
        given = {k: v for k, v in changes.items() if v is not None}
        merged = dataclasses.replace(self, **given)
        merged.check()
        return merged

    def check(self) -> None:
        if self.concurrency != "auto" and (
            not isinstance(self.concurrency, int)
            or isinstance(self.concurrency, bool)
            or self.concurrency < 1
        ):
            raise ConfigError(
                f"concurrency must be a whole number of at least 1, or auto "
                f"(got {self.concurrency!r})"
            )
        if self.breaker_threshold < 1:
            raise ConfigError(
                f"breaker_threshold must be at least 1 (got {self.breaker_threshold})"
            )
        if not 0 < self.probe_interval <= self.probe_interval_max:
            raise ConfigError("need 0 < probe_interval <= probe_interval_max")
        if not self.max_outage > 0:
            raise ConfigError(
                f"max_outage must be a positive number of seconds (got {self.max_outage})"
            )
        if self.rate is not None and self.rate <= 0:
            raise ConfigError(
                f"rate must be a positive number of requests per second (got {self.rate})"
            )
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1 (got {self.max_attempts})")
        if self.max_attributes_per_request is not None and self.max_attributes_per_request < 1:
            raise ConfigError("max_attributes_per_request must be at least 1")
        if self.on_conflict not in ("error", "last"):
            raise ConfigError(f"on_conflict must be 'error' or 'last' (got {self.on_conflict!r})")
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"log_format must be 'text' or 'json' (got {self.log_format!r})")
        if self.transport not in ("aiohttp", "httpx"):
            raise ConfigError(f"transport must be 'aiohttp' or 'httpx' (got {self.transport!r})")
        for name in ("timeout", "connect_timeout", "backoff_initial", "backoff_max"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")
        if self.insecure_skip_tls_verify and self.ca_bundle is not None:
            raise ConfigError(
                "ca_bundle and insecure_skip_tls_verify contradict each other: with the "
                "CA bundle certificates can be checked, so remove insecure_skip_tls_verify"
            )
        if self.cells not in ("exact", "as_shown"):
            raise ConfigError(f"cells must be 'exact' or 'as_shown' (got {self.cells!r})")
        unknown = set(self.columns) - {"customer_id", "attribute", "value"}
        if unknown:
            raise ConfigError(
                f"columns: unknown field(s) {', '.join(sorted(unknown))}; "
                "use customer_id, attribute, value"
            )

    @property
    def ceiling(self) -> int:
        """The most requests in flight: ``concurrency``, or the cap of ``auto``."""
        from bulk_sync.flow import AUTO_CEILING

        return AUTO_CEILING if self.concurrency == "auto" else int(self.concurrency)

    def token(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The API key from the environment (never from a file); ``None`` when unset."""
        env = os.environ if environ is None else environ
        value = env.get(self.token_env, "").strip()
        return value or None


_PATH_FIELDS = {"state", "lock", "ca_bundle", "summary_json", "metrics_file", "customer_map"}
_FIELD_TYPES = {f.name: f for f in dataclasses.fields(Settings)}


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from a YAML file (keys as in :class:`Settings`, ``-`` or ``_`` alike).

    ``environ`` (default: the process environment) holds the API key, which the file is
    checked not to contain, even in part.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config file {path} is larger than {MAX_CONFIG_BYTES // 1024} KiB: "
            "is it the right file?"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    try:
        data = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader
    except _AliasFound as exc:
        raise ConfigError(
            f"config file {path} uses a YAML alias (*name, line {exc.line}); write the "
            "value out instead (aliases are refused: nested ones can make a small file "
            "expand without bound)"
        ) from None
    except RecursionError:
        raise ConfigError(f"config file {path} is nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must be a mapping of settings")
    return settings_from_mapping(data, origin=str(path), environ=environ)


class _AliasFound(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases before anything is built from them."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise _AliasFound(event.start_mark.line + 1)
        if self._depth >= MAX_CONFIG_DEPTH:
            raise RecursionError
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    _depth = 0


def settings_from_mapping(
    data: Mapping[str, Any], *, origin: str = "config", environ: Mapping[str, str] | None = None
) -> Settings:
    env = os.environ if environ is None else environ
    token_env = next(
        (
            v
            for k, v in data.items()
            if str(k).strip().replace("-", "_").lower() == "token_env" and isinstance(v, str)
        ),
        DEFAULT_TOKEN_ENV,
    )
    _refuse_secrets(data, origin, key=env.get(token_env.strip(), "").strip())
    values: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = str(raw_key).strip().replace("-", "_").lower()
        if key in RENAMED:
            raise ConfigError(f"{origin}: {RENAMED[key]}")
        if key not in _FIELD_TYPES:
            known = ", ".join(sorted(_FIELD_TYPES))
            raise ConfigError(f"{origin}: unknown setting {raw_key!r} (known: {known})")
        if value is None:
            continue
        if key in _PATH_FIELDS:
            value = Path(os.path.expanduser(str(value)))
        elif key == "columns":
            if not isinstance(value, dict):
                raise ConfigError(
                    f"{origin}: columns must map customer_id/attribute/value to headers"
                )
            value = {str(k).strip().lower(): str(v) for k, v in value.items()}
        else:
            value = _coerce(key, value, origin)
        values[key] = value
    settings = dataclasses.replace(Settings(), **values)
    settings.check()
    return settings


def _coerce(key: str, value: Any, origin: str) -> Any:
    default = getattr(Settings(), key)
    try:
        if key == "concurrency" and isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError
            return value
        if key in (
            "rate",
            "max_outage",
            "probe_interval",
            "probe_interval_max",
            "deadline",
            "timeout",
            "connect_timeout",
            "grace_period",
        ) or key.startswith("backoff_"):
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if key in (
            "concurrency",
            "max_attempts",
            "max_attributes_per_request",
            "breaker_threshold",
        ) or key.startswith("max_"):
            if isinstance(value, bool):
                raise ValueError
            return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{origin}: {key} has an unusable value {value!r}") from None
    return str(value)


def _refuse_secrets(data: Mapping[str, Any], origin: str, parent: str = "", *, key: str) -> None:
    """Refuse anything that looks like an API key, at any depth, without quoting it.

    Key-like: 32+ hex digits anywhere in a setting's name or text value (``Bearer <key>``,
    ``https://host/?api_key=<key>``, ``"Bearer: <key>"`` as a header), or what
    :class:`~bulk_sync.redaction.Redactor` would mask of the actual key ``key`` (16
    consecutive characters of it, any case).
    """
    redactor = Redactor([key])  # the one rule for "holds the key" (runs of 16, any case)
    for raw_key, value in data.items():
        name_text = str(raw_key)
        setting = name_text.strip().replace("-", "_").lower()
        key_is_token = _looks_like_key(name_text, redactor)
        name = "a key" if key_is_token else repr(f"{parent}{raw_key}")
        values = value if isinstance(value, list) else [value]
        value_is_token = any(isinstance(v, str) and _looks_like_key(v, redactor) for v in values)
        if setting == "token_env" and not parent:
            if value_is_token:
                raise ConfigError(
                    f"{origin}: setting 'token_env' looks like an API key itself; token_env "
                    "names the environment variable that holds the key (such as "
                    f"{DEFAULT_TOKEN_ENV}), and the key goes in that variable, never in a file."
                )
            continue
        if key_is_token or value_is_token or setting in _SECRET_KEYS:
            raise ConfigError(
                f"{origin}: setting {name} looks like an API key or holds one; a config file "
                f"never holds the key. Put it in the environment variable {DEFAULT_TOKEN_ENV} "
                "(or the one named by token_env) instead."
            )
        for v in values:
            if isinstance(v, Mapping):
                _refuse_secrets(v, origin, f"{parent}{raw_key}.", key=key)


def _looks_like_key(text: str, key: Redactor) -> bool:
    return bool(_TOKEN_LIKE.search(text)) or key.leaks(text)
