"""Export and import of everything the operator owns, as a bundle (csms/migration/bundle.py): the API side of
``csms export`` / ``csms import``."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from typing import IO, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import Engine
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from csms.api.limits import MAX_BUNDLE_BYTES
from csms.migration.bundle import BundleError, export_database, open_bundle
from csms.migration.bundle_import import ImportRefused, OnConflict, import_bundle

router = APIRouter(tags=["migration"])
_CHUNK = 1 << 16
#: The route reads the raw body itself, so FastAPI cannot infer it for the OpenAPI document.
_BUNDLE_BODY = {
    "requestBody": {
        "required": True,
        "description": "a bundle written by GET /export or `csms export`",
        "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}, "example": "<the bundle>"}},
    }
}


def _engine(request: Request) -> Engine:
    return request.app.state.session_factory.kw["bind"]


@router.get("/export", response_class=StreamingResponse, responses={200: {"content": {"application/zip": {}}}})
def export_bundle(request: Request) -> StreamingResponse:
    """The whole database as a bundle (one consistent snapshot), streamed as a zip archive."""
    now = datetime.now(UTC)
    # zip seeks back to write its directory; the client gets the file in chunks, closed once it is sent.
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - the response closes it (background task)
    try:
        export_database(_engine(request), spool, now)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    name = f"chargetwin-{now:%Y%m%dT%H%M%SZ}.zip"
    return StreamingResponse(
        iter(lambda: spool.read(_CHUNK), b""),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
        background=BackgroundTask(spool.close),
    )


@router.post("/import", openapi_extra=_BUNDLE_BODY)
async def import_bundle_body(
    request: Request,
    dry_run: bool = Query(False, description="report per table what would change, write nothing"),
    on_conflict: OnConflict = Query(OnConflict.REFUSE, description="refuse, keep (the database's) or replace"),
) -> Any:
    """Import a bundle sent as the raw body (``application/zip``), in one transaction. 422: not a valid bundle
    (newer format, checksum or count mismatch, a row the database refuses); 409: conflicting rows under
    ``on_conflict=refuse``, with the report; 413: larger than the limit."""
    with tempfile.TemporaryFile() as spool:
        await _receive(request, spool)
        try:
            report = await run_in_threadpool(_import, _engine(request), spool, dry_run, on_conflict)
        except ImportRefused as refused:
            return JSONResponse(
                {"detail": str(refused), "report": refused.report.as_dict()}, status_code=status.HTTP_409_CONFLICT
            )
        except BundleError as exc:
            raise HTTPException(422, str(exc)) from None
    return report


async def _receive(request: Request, spool: IO[bytes]) -> None:
    too_large = HTTPException(413, f"bundle larger than {MAX_BUNDLE_BYTES} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BUNDLE_BYTES:
        raise too_large
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BUNDLE_BYTES:
            raise too_large
        spool.write(chunk)
    spool.seek(0)


def _import(engine: Engine, spool: IO[bytes], dry_run: bool, on_conflict: OnConflict) -> dict[str, Any]:
    with open_bundle(spool) as bundle, engine.connect() as connection:
        return import_bundle(connection, bundle, dry_run=dry_run, on_conflict=on_conflict).as_dict()
