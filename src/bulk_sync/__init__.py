"""bulk_sync: bulk upload of customer attributes to the Invisible Collector API.

The library never prints; :mod:`bulk_sync.cli` owns the terminal.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
