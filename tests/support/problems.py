"""What a refusal must look like: an RFC 9457 problem with a stable code, never a 5xx."""

from __future__ import annotations

from typing import Any


def assert_problem(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """``response`` is a problem with this status (and this code, if given); returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body = response.json()
    assert body["status"] == status and body["code"] and body["detail"] and body["type"].endswith(body["code"]), body
    if code is not None:
        assert body["code"] == code, body
    return body


def assert_no_server_errors(*responses: Any) -> None:
    """Every response (or exception a racing call returned) is an answer below 500, and every
    refusal among them is a problem document."""
    for r in responses:
        assert not isinstance(r, BaseException), repr(r)
        assert r.status_code < 500, r.text
        if r.status_code >= 400:
            assert r.headers["content-type"].startswith("application/problem+json"), r.text
