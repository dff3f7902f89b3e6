"""Serving the console and the technician app (static files with safe headers), the interactive
API docs from our own copy of Swagger UI, and a page per problem type: all off the API spec."""

from __future__ import annotations

import html
import mimetypes
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from dispatch.errors import PROBLEM_TYPES, NotFound

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
    app.add_api_route("/docs", _docs(app), include_in_schema=False, methods=["GET"])
    app.add_api_route("/problems", problem_index, include_in_schema=False, methods=["GET"])
    app.add_api_route("/problems/{code}", problem_page, include_in_schema=False, methods=["GET"])


# Swagger UI from the package (static/ui/vendor), never from a CDN: the docs work offline and
# behind a firewall, and the page loads no third-party code.
SWAGGER = "/ui/vendor/swagger-ui-5.35.0"


def _docs(app: FastAPI):  # type: ignore[no-untyped-def]
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — API docs",
            swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER}/favicon-32x32.png",
        )

    return docs


def _prose(text: str) -> str:
    """Escaped text with `code` spans."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text, quote=False))


def _page(title: str, body: str) -> HTMLResponse:
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{html.escape(title)}</title><link rel="stylesheet" href="/ui/common/base.css"></head>'
        f'<body><main class="problem-page">{body}</main></body></html>\n'
    )
    return HTMLResponse(page, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})


async def problem_page(code: str) -> HTMLResponse:
    """The page behind a problem's `type` URI: what the code means and what to do about it."""
    problem = PROBLEM_TYPES.get(code)
    if problem is None:
        raise NotFound(f"no problem type {code!r}; see /problems for the list", code="not-found")
    return _page(
        f"{problem.title} ({code})",
        f'<p><a href="/problems">All problem types</a></p><h1>{html.escape(problem.title)}</h1>'
        f"<p>Code <code>{html.escape(code)}</code>, usually answered with HTTP {problem.status}.</p>"
        f"<p>{_prose(problem.help)}</p>"
        "<p>Errors of this API are RFC 9457 problem details (<code>application/problem+json</code>) whose "
        "<code>type</code> is this page's address and whose <code>code</code> is the code above; "
        "<code>detail</code> says what happened in this case.</p>",
    )


async def problem_index() -> HTMLResponse:
    rows = "".join(
        f'<li><a href="/problems/{html.escape(code)}"><code>{html.escape(code)}</code></a> '
        f"{problem.status} — {html.escape(problem.title)}</li>"
        for code, problem in sorted(PROBLEM_TYPES.items())
    )
    return _page("Problem types", f"<h1>Problem types</h1><ul>{rows}</ul>")


def _redirect_to(target: str) -> Callable[[], Awaitable[RedirectResponse]]:
    async def redirect() -> RedirectResponse:
        return RedirectResponse(target, status_code=308)

    return redirect
