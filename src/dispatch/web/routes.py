"""Serving the console and the technician app: static files with safe headers, off the API spec."""

from __future__ import annotations

import mimetypes
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).parent / "static"

# Only our own files; images may be blob: (a photo picked before it is sent) or data:.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; manifest-src 'self'; worker-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)

mimetypes.add_type("application/manifest+json", ".webmanifest")
mimetypes.add_type("text/javascript", ".js")


class UiFiles(StaticFiles):
    """Static files with the headers a page holding an API key should have."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        # Always revalidate (ETag makes that cheap): a new release is seen on the next load,
        # and the technician app's service worker keeps the offline copy.
        response.headers["Cache-Control"] = "no-cache"
        return response


def mount(app: FastAPI) -> None:
    """/console/ and /tech/ (each an app shell), and /ui/ for what they share."""
    for prefix, folder in (("/console", "console"), ("/tech", "tech")):
        app.add_api_route(prefix, _redirect_to(prefix + "/"), include_in_schema=False, methods=["GET"])
        app.mount(prefix, UiFiles(directory=STATIC / folder, html=True), name=folder)
    app.mount("/ui", UiFiles(directory=STATIC / "ui", html=False), name="ui")


def _redirect_to(target: str) -> Callable[[], Awaitable[RedirectResponse]]:
    async def redirect() -> RedirectResponse:
        return RedirectResponse(target, status_code=308)

    return redirect
