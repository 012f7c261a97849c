"""bulk_sync: bulk upload of customer attributes to the Invisible Collector API.

    >>> import bulk_sync
    >>> summary = bulk_sync.sync(["customers.csv"], report="out.csv")  # doctest: +SKIP

The library never prints; :mod:`bulk_sync.cli` owns the terminal. The heavy modules
(pandas, pyarrow, aiohttp) load on first use, so ``bulk-sync --version`` stays quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Client",
    "Frame",
    "Settings",
    "Summary",
    "__version__",
    "plan_frame",
    "sync",
    "sync_async",
]

if TYPE_CHECKING:
    from bulk_sync.client import Client
    from bulk_sync.config import Settings
    from bulk_sync.frames import Frame, plan_frame
    from bulk_sync.runner import Summary, sync, sync_async

_LAZY = {
    "Client": "bulk_sync.client",
    "Frame": "bulk_sync.frames",
    "plan_frame": "bulk_sync.frames",
    "Settings": "bulk_sync.config",
    "Summary": "bulk_sync.runner",
    "sync": "bulk_sync.runner",
    "sync_async": "bulk_sync.runner",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bulk_sync' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
