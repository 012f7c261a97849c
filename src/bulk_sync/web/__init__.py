"""``bulk-sync serve``: the ops page (see :mod:`bulk_sync.web.app` and ``docs/web.md``).

Nothing is imported here, so that ``bulk-sync --version`` does not load aiohttp.web and
Jinja2; import :mod:`bulk_sync.web.app` for :func:`~bulk_sync.web.app.create_app`.
"""
