"""Pages of the files: start page, upload, a draft's sheets, columns and dry run, confirmation."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web

from bulk_sync.cells import normalize_header
from bulk_sync.errors import BulkSyncError
from bulk_sync.loading.peek import peek
from bulk_sync.web.analysis import Analysis, analyse
from bulk_sync.web.base import (
    CACHE,
    CHUNK,
    CONFIG,
    DATA,
    FLASH,
    MULTIPART,
    PAGE_SIZE,
    RUNS,
    error_page,
    not_ready,
    render,
)
from bulk_sync.web.runs import RunRequest, load_options_for
from bulk_sync.web.store import (
    ACCEPTED_EXTENSIONS,
    DataDir,
    Draft,
    DraftFile,
    Upload,
    clean_name,
    headers_key,
    new_id,
    now_text,
)
from bulk_sync.web.views_runs import start_run

log = logging.getLogger("bulk_sync.web")

# -- pages -----------------------------------------------------------------------------


async def index(request: web.Request) -> web.Response:
    data = request.app[DATA]
    runs = await asyncio.to_thread(lambda: list(_take(data.runs(), 5)))
    return render(
        request,
        "index.html",
        {
            "runs": runs,
            "max_upload": request.app[CONFIG].max_upload_bytes,
            "accepted": ",".join(ACCEPTED_EXTENSIONS),
            "live": request.app[RUNS].live,
            "samples": request.app[CONFIG].samples,
        },
    )


def _take(items: Any, n: int) -> Any:
    for k, item in enumerate(items):
        if k >= n:
            return
        yield item


# -- upload ----------------------------------------------------------------------------


class _TooLarge(Exception):
    pass


async def upload(request: web.Request) -> web.StreamResponse:
    """Store the files of a multipart form under server-chosen names, then show the draft.

    The whole request is limited to ``max_upload_bytes``; a file type the loader cannot
    read is refused before it is stored."""
    config = request.app[CONFIG]
    data = request.app[DATA]
    limit = config.max_upload_bytes
    draft: Draft | None = None
    if "draft" in request.match_info:
        draft = data.draft(request.match_info["draft"])
        if draft is None:
            raise web.HTTPNotFound(text="No such set of files.")
    length = request.content_length
    if length is not None and length > limit + 64 * 1024:
        return _too_large(request, limit)
    reader: MultipartReader | None = request.get(MULTIPART)
    if reader is None:
        raise web.HTTPBadRequest(text="Choose one or more files to upload.")
    stored: list[tuple[Upload, Path]] = []
    refused: list[str] = []
    total = 0
    try:
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader) or not part.filename:
                continue
            name = clean_name(part.filename)
            ext = Path(name).suffix.lower()
            if ext not in ACCEPTED_EXTENSIONS:
                refused.append(
                    f"{name}: not a spreadsheet this tool reads (CSV, TSV, XLSX, XLS or ODS)"
                )
                await part.release()
                continue
            upload_id, path = data.new_upload_path(ext)
            size = 0
            with path.open("xb") as out:
                stored.append((Upload(upload_id, name, ext, 0, now_text()), path))
                while chunk := await part.read_chunk(CHUNK):
                    size += len(chunk)
                    total += len(chunk)
                    if total > limit:
                        raise _TooLarge
                    out.write(chunk)
            if size == 0:
                refused.append(f"{name}: the file is empty")
                path.unlink(missing_ok=True)
                stored.pop()
                continue
            stored[-1] = (dataclasses.replace(stored[-1][0], size=size), path)
    except _TooLarge:
        for _, path in stored:
            path.unlink(missing_ok=True)
        return _too_large(request, limit)
    except BaseException:
        for _, path in stored:
            path.unlink(missing_ok=True)
        raise
    if not stored:
        return render(
            request,
            "index.html",
            {
                "runs": [],
                "max_upload": limit,
                "accepted": ",".join(ACCEPTED_EXTENSIONS),
                "live": request.app[RUNS].live,
                "errors": refused or ["Choose one or more files to upload."],
            },
            status=400,
        )
    files: list[DraftFile] = []
    for up, _ in stored:
        data.save_upload(up)
        f = DraftFile(up.id, up.name, up.ext, up.size)
        files.append(await asyncio.to_thread(_remembered_mapping, data, f, request))
    if draft is None:
        draft = Draft(new_id("d"), now_text(), tuple(files))
    else:
        draft = dataclasses.replace(
            draft, files=draft.files + tuple(files), revision=draft.revision + 1
        )
    data.save_draft(draft)
    location = f"/drafts/{draft.id}"
    if refused:
        location += "?refused=" + str(len(refused))
        _flash(request, draft.id, refused)
    raise web.HTTPSeeOther(location)


def _flash(request: web.Request, key: str, messages: list[str]) -> None:
    """Messages for the next view of a draft (files refused at upload)."""
    flashes = request.app[FLASH]
    flashes[key] = messages[:20]
    while len(flashes) > 50:
        flashes.pop(next(iter(flashes)))


def _too_large(request: web.Request, limit: int) -> web.Response:
    mb = limit / (1024 * 1024)
    message = (
        f"The upload is too large: the limit is {mb:g} MB at a time. Upload fewer files at "
        "once, or split the file (or ask for a larger limit: `bulk-sync serve "
        "--max-upload-mb N`)."
    )
    response = error_page(request, 413, message)
    response.force_close()
    return response


def _remembered_mapping(data: DataDir, f: DraftFile, request: web.Request) -> DraftFile:
    """A new file whose headers were mapped before gets that mapping again."""
    settings = request.app[CONFIG].settings
    try:
        look = peek(data.upload_path(f).read_bytes(), f.name, load_options_for(f, settings))
    except BulkSyncError:
        return f
    if look.complete or not look.headers:
        return f
    remembered = data.mapping(headers_key(look.headers))
    if remembered is None:
        return f
    # The headers are the same up to case, spaces, "-" and "_": use this file's spelling.
    by_key = {normalize_header(h): h for h in look.headers}
    columns = {
        k: by_key[normalize_header(v)]
        for k, v in remembered.get("columns", {}).items()
        if normalize_header(v) in by_key
    }
    return dataclasses.replace(
        f,
        columns=columns,
        wide=bool(remembered.get("wide")),
        mapping_note="Columns chosen as for an earlier file with the same headers.",
    )


# -- drafts ----------------------------------------------------------------------------


def _draft_or_404(request: web.Request) -> Draft:
    draft = request.app[DATA].draft(request.match_info["draft"])
    if draft is None:
        raise web.HTTPNotFound(text="No such set of files. Upload them again from the start page.")
    return draft


async def _analysis(request: web.Request, draft: Draft) -> Analysis:
    cache = request.app[CACHE]
    found = cache.get(draft)
    if found is None:
        found = await asyncio.to_thread(
            analyse, request.app[DATA], draft, request.app[CONFIG].settings
        )
        cache.put(draft, found)
    return found


async def draft_page(request: web.Request) -> web.Response:
    draft = _draft_or_404(request)
    analysis = await _analysis(request, draft)
    page = _page_number(request)
    problems: tuple[Any, ...] = ()
    pages = 1
    if analysis.preview is not None:
        pages = max(1, math.ceil(analysis.preview.problem_count / PAGE_SIZE))
        page = min(page, pages)
        problems = analysis.preview.problems((page - 1) * PAGE_SIZE, PAGE_SIZE)
    return render(
        request,
        "draft.html",
        {
            "draft": draft,
            "analysis": analysis,
            "problems": problems,
            "page": page,
            "pages": pages,
            "page_size": PAGE_SIZE,
            "flash": request.app[FLASH].pop(draft.id, []),
            "token_present": request.app[RUNS].token_present(),
            "max_upload": request.app[CONFIG].max_upload_bytes,
            "accepted": ",".join(ACCEPTED_EXTENSIONS),
        },
    )


def _page_number(request: web.Request) -> int:
    try:
        return max(1, int(request.query.get("page", "1")))
    except ValueError:
        return 1


async def set_file(request: web.Request) -> web.StreamResponse:
    """Choose a file's sheet, or map its columns (remembered for the same headers)."""
    data = request.app[DATA]
    draft = _draft_or_404(request)
    index = int(request.match_info["index"])
    if index >= len(draft.files):
        raise web.HTTPNotFound(text="No such file in this set.")
    form = await request.post()
    f = draft.files[index]
    if "sheet" in form:
        choice = str(form["sheet"])
        if choice == "*all*":
            f = dataclasses.replace(f, sheet=None, all_sheets=True)
        else:
            f = dataclasses.replace(f, sheet=choice or None, all_sheets=False)
    if "layout" in form:
        f = _mapped(f, form)
        look = await asyncio.to_thread(_peek_headers, data, f, request)
        if look:
            data.remember_mapping(headers_key(look), {"columns": dict(f.columns), "wide": f.wide})
    data.save_draft(draft.with_file(index, f))
    raise web.HTTPSeeOther(f"/drafts/{draft.id}#file-{index}")


def _mapped(f: DraftFile, form: Mapping[str, Any]) -> DraftFile:
    wide = form.get("layout") == "wide"
    wanted = ("customer_id",) if wide else ("customer_id", "attribute", "value")
    columns = {k: str(form.get(k, "")) for k in wanted if str(form.get(k, ""))}
    return dataclasses.replace(f, columns=columns, wide=wide, mapping_note="")


def _peek_headers(data: DataDir, f: DraftFile, request: web.Request) -> tuple[str, ...]:
    settings = request.app[CONFIG].settings
    try:
        return peek(data.upload_path(f).read_bytes(), f.name, load_options_for(f, settings)).headers
    except BulkSyncError:
        return ()


async def remove_file(request: web.Request) -> web.StreamResponse:
    data = request.app[DATA]
    draft = _draft_or_404(request)
    index = int(request.match_info["index"])
    if index < len(draft.files):
        files = draft.files[:index] + draft.files[index + 1 :]
        draft = dataclasses.replace(draft, files=files, revision=draft.revision + 1)
        data.save_draft(draft)
    if not draft.files:
        raise web.HTTPSeeOther("/")
    raise web.HTTPSeeOther(f"/drafts/{draft.id}")


async def confirm_page(request: web.Request) -> web.Response:
    draft = _draft_or_404(request)
    analysis = await _analysis(request, draft)
    if analysis.preview is None:
        raise web.HTTPSeeOther(f"/drafts/{draft.id}")
    return render(
        request,
        "confirm.html",
        {
            "draft": draft,
            "analysis": analysis,
            "kind": "sync",
            "customers": analysis.preview.customers,
            "values": analysis.preview.pairs,
            "requests": analysis.preview.requests,
            "not_sent": analysis.preview.counts.get("invalid", 0),
            "problem": not_ready(request),
            "action": f"/drafts/{draft.id}/sync",
            "back": f"/drafts/{draft.id}",
            "files": [f.name for f in draft.files],
        },
    )


async def start_sync(request: web.Request) -> web.StreamResponse:
    draft = _draft_or_404(request)
    form = await request.post()
    if str(form.get("revision", "")) != str(draft.revision):
        raise web.HTTPSeeOther(f"/drafts/{draft.id}?changed=1")
    return await start_run(
        request, RunRequest("sync", draft.files, draft.id), f"/drafts/{draft.id}"
    )
