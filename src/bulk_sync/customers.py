"""Which ids name the same customer: a customer's ``gid`` and its optional ``externalId``.

The API addresses a customer by either (``/customers/{id}/attributes``: "the id or
externalId", say the official Java and C# clients); the Invisible Collector assigns the
gid (a UUID such as ``061d2feb-81c2-4694-a74a-13cecbe7d2ce``), the user may give an
external id (``100001``, the customer number in their own system). Both address the same
attribute map, so two rows that look different can be about one customer.

A customer file lists them, one customer a line::

    061d2feb-81c2-4694-a74a-13cecbe7d2ce,100001
    1b4e28ba-2fa1-11d2-883f-0016d3cca427
    # a comment; blank lines are ignored

``gid`` alone, or ``gid,externalId``. The emulator takes it as ``--customers`` (the
customers that exist, by either id); ``sync`` takes it as ``--customer-map`` (so that a
conflict between rows naming one customer by its two ids is seen).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from bulk_sync.errors import ConfigError

__all__ = ["CustomerDirectory", "read_customer_file"]

MAX_FILE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class CustomerDirectory:
    """Known customers: ``gids``, and ``external`` (externalId -> gid)."""

    gids: frozenset[str] = frozenset()
    external: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(cls, ids: Iterable[str]) -> CustomerDirectory:
        """Customers known by one id each (no external ids)."""
        return cls(frozenset(ids))

    @classmethod
    def parse(cls, text: str, origin: str = "customer file") -> CustomerDirectory:
        """Read ``gid`` or ``gid,externalId`` lines; :class:`ConfigError` naming the line
        for a line that contradicts another (an id given to two customers)."""
        gids: dict[str, int] = {}
        external: dict[str, str] = {}
        where: dict[str, int] = {}
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            gid, comma, ext = (part.strip() for part in line.partition(","))
            if not gid or (comma and not ext) or "," in ext:
                raise ConfigError(
                    f"{origin}, line {number}: expected 'gid' or 'gid,externalId', "
                    f"got {_shown(line)}"
                )
            if gid in gids and not ext:
                continue  # listed again, nothing new
            if gid in external and external[gid] != gid:
                raise ConfigError(
                    f"{origin}, line {number}: {_shown(gid)} is the external id of another "
                    f"customer (line {where[gid]})"
                )
            gids.setdefault(gid, number)
            if ext:
                if ext in gids and ext != gid:
                    raise ConfigError(
                        f"{origin}, line {number}: external id {_shown(ext)} is the gid of "
                        f"another customer (line {gids[ext]})"
                    )
                if ext in external and external[ext] != gid:
                    raise ConfigError(
                        f"{origin}, line {number}: external id {_shown(ext)} is given to two "
                        f"customers (lines {where[ext]} and {number})"
                    )
                owned = [e for e, g in external.items() if g == gid and e != ext]
                if owned:
                    raise ConfigError(
                        f"{origin}, line {number}: customer {_shown(gid)} has two external "
                        f"ids ({_shown(owned[0])} on line {where[owned[0]]}, and {_shown(ext)})"
                    )
                external[ext] = gid
                where[ext] = number
        return cls(frozenset(gids), MappingProxyType(external))

    def __contains__(self, customer_id: object) -> bool:
        return customer_id in self.gids or customer_id in self.external

    def __len__(self) -> int:
        return len(self.gids)

    def gid_of(self, customer_id: str) -> str | None:
        """The gid of the customer ``customer_id`` names (a gid first, then an external
        id), or ``None`` when it names none."""
        if customer_id in self.gids:
            return customer_id
        return self.external.get(customer_id)


def read_customer_file(path: Path, origin: str | None = None) -> CustomerDirectory:
    """:meth:`CustomerDirectory.parse` of a UTF-8 file (a BOM is allowed)."""
    name = origin or str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {name}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{name} is larger than {MAX_FILE_BYTES >> 20} MiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name} is not UTF-8 text (byte {exc.start})") from None
    return CustomerDirectory.parse(text, name)


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")
