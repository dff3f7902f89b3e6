"""End to end in a real browser: the dispatcher console and the technician app, served by the
real app under uvicorn, driven by Playwright in the system's headless Chromium.

Screenshots go to ``DISPATCH_TEST_ARTIFACTS`` (default ``test-artifacts/``, ignored by git)."""

from __future__ import annotations

import io
import os
import re
import secrets
import struct
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.api import job_body
from support.database import PG_URL
from support.servers import running

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs the system Chromium at /usr/bin/chromium (apt-get install chromium)"
    ),
]
ARTIFACTS = Path(os.environ.get("DISPATCH_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {
    "viewport": {"width": 360, "height": 780},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "timezone_id": "Europe/Warsaw",
    "locale": "en-GB",
}
DESKTOP = {"viewport": {"width": 1366, "height": 900}, "timezone_id": "UTC", "locale": "en-GB"}
TIMEOUT_MS = 15_000


class Service:
    """The running app, and the admin's HTTP client for setting the scene and checking results."""

    def __init__(self, base_url: str, admin_key: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=10)

    def post(self, path: str, body: Any) -> dict[str, Any]:
        r = self.http.post(path, json=body)
        assert r.status_code in (200, 201), r.text
        return r.json()

    def get(self, path: str) -> dict[str, Any]:
        r = self.http.get(path)
        assert r.status_code == 200, r.text
        return r.json()

    def key(self, role: str, **bound: int) -> str:
        return self.post("/v1/api-keys", {"role": role, **bound})["key"]

    def technician(self, name: str, **fields: Any) -> dict[str, Any]:
        body = {
            "name": name,
            "phone": "+48 600 100 200",
            "skills": ["washing machine"],
            "lat": 52.2297,
            "lon": 21.0122,
            "capacity": 3,
        }
        body.update(fields)
        return self.post("/v1/technicians", body)

    def job(self, **fields: Any) -> dict[str, Any]:
        return self.post("/v1/jobs", job_body(**fields))


@pytest.fixture
def service(settings, database, tmp_path) -> Iterator[Service]:
    """The real app in a uvicorn process on the test database (the `database` fixture cleans up)."""
    admin_key = secrets.token_urlsafe(24)
    env = {
        "DATABASE_URL": settings.database_url,
        "DISPATCH_ADMIN_KEY": admin_key,
        "DISPATCH_DATA_DIR": str(tmp_path),
        "DISPATCH_AUTO_DISPATCH": "false",
        "DISPATCH_SQLITE_SYNCHRONOUS": "NORMAL",
    }
    with running(env=env, log_dir=tmp_path) as (server,):
        svc = Service(server.base_url, admin_key)
        yield svc
        svc.http.close()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright) -> Iterator[Any]:
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True)
    yield chromium
    chromium.close()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    suffix = "postgres" if PG_URL else "sqlite"
    page.screenshot(path=str(ARTIFACTS / f"{name}-{suffix}.png"), full_page=True)


def fits_360(page: Any) -> None:
    """Nothing sticks out sideways on a 360 px phone."""
    assert page.evaluate("document.documentElement.scrollWidth") <= 360


def sign_in(page: Any, url: str, key: str) -> None:
    page.goto(url)
    page.get_by_label("key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def technician_phone(service: Service, browser: Any, tech: dict[str, Any], job: dict[str, Any]) -> tuple[Any, Any, Any]:
    """The technician's phone at 360 px, signed in to the app: its context, page and the job's card."""
    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    sign_in(page, service.base_url + "/tech/", service.key("technician", technician_id=tech["id"]))
    return context, page, page.locator(f"#job-{job['id']}")


def tiny_png() -> bytes:
    """A 4x4 PNG, made here so the test needs no image library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\x2a\x6f\xb0" * 4 for _ in range(4))
    body = io.BytesIO()
    body.write(b"\x89PNG\r\n\x1a\n")
    body.write(chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)))
    body.write(chunk(b"IDAT", zlib.compress(raw)))
    body.write(chunk(b"IEND", b""))
    return body.getvalue()


def server_status_becomes(service: Service, job_id: int, status: str, timeout: float = 10.0) -> None:
    """The phone sends in the background: wait (bounded) until the server has the job there."""
    deadline = time.monotonic() + timeout
    while (current := service.get(f"/v1/jobs/{job_id}")["status"]) != status:
        assert time.monotonic() < deadline, f"job {job_id} is still {current}, expected {status}"
        time.sleep(0.1)


def status_changes(service: Service, job_id: int) -> list[dict[str, Any]]:
    events = service.get(f"/v1/jobs/{job_id}/events?limit=200")["items"]
    return [e for e in events if e["type"] == "status_changed"]


# ---------------------------------------------------------------------------------------------


def test_a_dispatcher_signs_in_and_dispatches_a_job_to_the_nearest_technician(service, browser):
    from playwright.sync_api import expect

    near = service.technician("Anna Nowak", lat=52.2310, lon=21.0100, home_branch="WAW-C")
    service.technician("Piotr Off", lat=52.2450, lon=21.0300, home_branch="WAW-N", on_duty=False)
    job = service.job(customer={"name": "Maria Dąbrowska", "phone": "+48 22 555 01 77"}, external_ref="ORD-1001")
    now = datetime.now(UTC)
    late = service.job(
        customer={"name": "Jan Kowalski", "phone": "+48 22 555 09 09"},
        reported_at=(now - timedelta(hours=24, minutes=1)).isoformat(),
    )
    risky = service.job(
        customer={"name": "Ewa Lis", "phone": "+48 22 555 08 08"}, reported_at=(now - timedelta(hours=20)).isoformat()
    )
    # A job waiting for a part nobody has: backordered with the supplier's lead time.
    service.post("/v1/locations", {"code": "CENTRAL", "name": "Central", "kind": "central", "lat": 51.76, "lon": 19.46})
    service.post(
        "/v1/parts", {"sku": "BELT-1200", "name": "Drum belt", "categories": ["washing machine"], "lead_time_hours": 72}
    )
    waiting = service.job(customer={"name": "Olga Wrona", "phone": "+48 22 555 07 07"})
    service.post(f"/v1/jobs/{waiting['id']}/parts", {"sku": "BELT-1200", "quantity": 1})
    key = service.key("dispatcher")

    context = browser.new_context(**DESKTOP)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    sign_in(page, service.base_url + "/console/", key)

    board = page.locator("#board tbody")
    expect(board.locator("tr")).to_have_count(4)
    # Most urgent first: the late one, then the one at risk.
    expect(board.locator("tr").nth(0)).to_contain_text(f"#{late['id']}")
    expect(board.locator("tr").nth(0)).to_contain_text("Breached")
    expect(board.locator("tr").nth(1)).to_contain_text("At risk")
    expect(page.locator("#at-risk-panel")).to_contain_text("Jan Kowalski")
    expect(page.locator("#at-risk-panel")).to_contain_text("Ewa Lis")
    if datetime.fromisoformat(late["due_at"]).date() == now.date():  # the browser's day is UTC's (DESKTOP)
        expect(page.locator("#breaches-panel")).to_contain_text(f"#{late['id']}")
    expect(page.locator("#parts-panel")).to_contain_text("1× BELT-1200 backordered")
    shot(page, "console-board")
    assert risky["sla"]["state"] == "at_risk"
    # Search by part of the phone number narrows the board to one job.
    page.get_by_label("Customer phone or order no.").fill("5550177")
    page.get_by_role("button", name="Search").click()
    expect(board.locator("tr")).to_have_count(1)
    expect(board).to_contain_text("ORD-1001")

    board.get_by_role("link", name=f"#{job['id']}").click()
    expect(page.locator("#job-title")).to_contain_text(f"Job #{job['id']}")
    expect(page.locator("#job-timeline")).to_contain_text("created")
    page.get_by_role("button", name="Dispatch nearest").click()
    expect(page.locator("#dispatch-chosen")).to_contain_text("Sent Anna Nowak")
    expect(page.locator("#candidates")).to_contain_text("Piotr Off")
    expect(page.locator("#candidates")).to_contain_text("off duty")
    expect(page.locator("#job-summary")).to_contain_text("Assigned")
    expect(page.get_by_role("button", name="Dispatch nearest")).to_be_disabled()  # assigned now
    expect(page.get_by_role("button", name="Assign", exact=True)).to_be_enabled()  # may still move it
    shot(page, "console-job")

    server = service.get(f"/v1/jobs/{job['id']}")
    assert server["status"] == "assigned"
    assert server["technician_id"] == near["id"]
    context.close()


def test_the_kpi_page_shows_the_24_hour_rate_and_where_the_time_went_or_says_it_cannot(service, browser):
    from playwright.sync_api import expect

    tech = service.technician("Anna Nowak")
    job = service.job()
    service.post(f"/v1/jobs/{job['id']}/assign", {"technician_id": tech["id"], "reason": "regular customer"})
    for step in ("en_route", "on_site", "completed"):
        service.post(f"/v1/jobs/{job['id']}/status", {"status": step, "at": datetime.now(UTC).isoformat()})

    context = browser.new_context(**DESKTOP)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    sign_in(page, service.base_url + "/console/", service.key("supervisor"))
    expect(page.locator("#board")).to_be_visible()
    page.get_by_role("link", name="KPIs").click()
    expect(page.locator("#kpi-completion_rate_24h")).to_contain_text("100.0 %")
    expect(page.locator("#kpi-stages")).to_contain_text("Waiting for parts")
    expect(page.locator("#kpi-charts figure").first).to_contain_text("24-hour completion rate by day")
    shot(page, "console-kpis")
    context.close()


def test_a_technician_completes_a_job_on_the_phone(service, browser):
    from playwright.sync_api import expect

    tech = service.technician("Anna Nowak")
    job = service.job()
    service.post(f"/v1/jobs/{job['id']}/assign", {"technician_id": tech["id"], "reason": "regular customer"})
    key = service.key("technician", technician_id=tech["id"])

    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    sign_in(page, service.base_url + "/tech/", key)
    card = page.locator(f"#job-{job['id']}")
    expect(card).to_contain_text("Maria Dąbrowska")
    expect(card.get_by_role("link", name="Call Maria Dąbrowska")).to_have_attribute("href", "tel:+48225550100")
    expect(card.get_by_role("link", name="Navigate to Marszałkowska 104, Warszawa")).to_have_attribute(
        "href", "https://www.google.com/maps/dir/?api=1&destination=52.2319%2C21.0067"
    )
    fits_360(page)
    shot(page, "tech-jobs-360")

    card.get_by_role("button", name=f"En route, job {job['id']}").click()
    expect(card.locator("[data-status]")).to_have_text("En route")
    expect(page.locator("#outbox")).to_have_count(0)
    card.get_by_role("button", name=f"On site, job {job['id']}").click()
    expect(card.get_by_role("button", name=f"Done, job {job['id']}")).to_be_enabled()
    card.get_by_role("button", name=f"Done, job {job['id']}").click()
    card.get_by_label("Sign-off photo").set_input_files(
        {"name": "signoff.png", "mimeType": "image/png", "buffer": tiny_png()}
    )
    card.get_by_label("Signed by").fill("Maria Dąbrowska")
    fits_360(page)
    shot(page, "tech-signoff-360")
    card.get_by_role("button", name="Complete job").click()
    expect(page.locator(f"#job-{job['id']}")).to_have_count(0)
    expect(page.locator("#outbox")).to_have_count(0)
    expect(page.locator("#refused")).to_have_count(0)

    server = service.get(f"/v1/jobs/{job['id']}")
    assert server["status"] in ("completed", "closed")
    assert [e["data"]["to"] for e in status_changes(service, job["id"])] == ["en_route", "on_site", "completed"]
    photos = service.get(f"/v1/jobs/{job['id']}/photos")["items"]
    assert len(photos) == 1 and photos[0]["format"] == "png"
    closeout = service.get(f"/v1/jobs/{job['id']}/closeout")
    assert (closeout["signer_name"], closeout["photo_id"]) == ("Maria Dąbrowska", photos[0]["id"])
    assert "signoff" not in closeout["missing"]
    context.close()


def test_taps_made_offline_are_queued_shown_and_sent_once_in_order_when_the_signal_returns(service, browser):
    from playwright.sync_api import expect

    tech = service.technician("Anna Nowak")
    job = service.job()
    service.post(f"/v1/jobs/{job['id']}/assign", {"technician_id": tech["id"], "reason": "regular customer"})
    key = service.key("technician", technician_id=tech["id"])

    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    sign_in(page, service.base_url + "/tech/", key)
    card = page.locator(f"#job-{job['id']}")
    expect(card).to_contain_text("Assigned")
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")  # the shell is cached

    context.set_offline(True)
    expect(page.locator("#connection")).to_have_text("Offline")
    card.get_by_role("button", name=f"En route, job {job['id']}").click()
    card.get_by_role("button", name=f"On site, job {job['id']}").click()
    expect(page.locator("#outbox-title")).to_have_text("2 waiting to be sent")
    expect(page.locator("#outbox li")).to_have_count(2)
    expect(card.locator("[data-status]")).to_have_text("On site")
    # The app opens again with no signal: the shell from the service worker, the jobs and the
    # outbox from the phone's own storage.
    page.reload()
    expect(page.locator("#outbox-title")).to_have_text("2 waiting to be sent")
    expect(page.locator(f"#job-{job['id']}")).to_contain_text("On site")
    fits_360(page)
    shot(page, "tech-offline-360")
    assert service.get(f"/v1/jobs/{job['id']}")["status"] == "assigned"  # nothing got through

    context.set_offline(False)
    expect(page.locator("#outbox")).to_have_count(0)
    expect(page.locator("#connection")).to_have_text("Online")
    expect(page.locator("#refused")).to_have_count(0)
    shot(page, "tech-back-online-360")

    server = service.get(f"/v1/jobs/{job['id']}")
    assert server["status"] == "on_site"
    changes = status_changes(service, job["id"])
    assert [(e["data"]["from"], e["data"]["to"]) for e in changes] == [
        ("assigned", "en_route"),
        ("en_route", "on_site"),
    ]
    # Each carries the phone's time of the tap, before the server heard of it.
    for e in changes:
        assert datetime.fromisoformat(e["occurred_at"]) < datetime.fromisoformat(e["recorded_at"])
    # Nothing more is sent later (no duplicates from a second flush).
    page.wait_for_timeout(6000)
    assert len(status_changes(service, job["id"])) == 2
    context.close()


AXE = Path(__file__).resolve().parent / "vendor" / "axe-core-4.10.3" / "axe.min.js"


def serious_accessibility_problems(page: Any) -> list[str]:
    """axe-core's serious and critical findings (labels, contrast, names, landmarks …)."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    assert result["testEngine"]["name"] == "axe-core" and result["passes"], "axe did not run"
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_the_console_and_the_phone_app_pass_an_accessibility_check_and_work_from_the_keyboard(service, browser):
    from playwright.sync_api import expect

    tech = service.technician("Anna Nowak")
    job = service.job()
    service.post(f"/v1/jobs/{job['id']}/assign", {"technician_id": tech["id"], "reason": "regular customer"})

    # axe is injected as an inline script, which the pages' CSP rightly forbids: bypass it here.
    console = browser.new_context(**DESKTOP, bypass_csp=True)
    page = console.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    sign_in(page, service.base_url + "/console/", service.key("dispatcher"))
    expect(page.locator("#board tbody tr")).to_have_count(1)
    assert serious_accessibility_problems(page) == []
    page.goto(service.base_url + f"/console/#/jobs/{job['id']}")
    expect(page.locator("#job-timeline")).to_contain_text("assigned")
    assert serious_accessibility_problems(page) == []
    console.close()

    phone = browser.new_context(**PHONE, bypass_csp=True)
    page = phone.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    sign_in(page, service.base_url + "/tech/", service.key("technician", technician_id=tech["id"]))
    card = page.locator(f"#job-{job['id']}")
    expect(card).to_contain_text("Assigned")
    assert serious_accessibility_problems(page) == []
    # Keyboard only: Tab to "En route" and press Enter.
    en_route = card.get_by_role("button", name=f"En route, job {job['id']}")
    for _ in range(20):
        page.keyboard.press("Tab")
        if en_route.evaluate("el => el === document.activeElement"):
            break
    else:
        pytest.fail("the En route button cannot be reached with Tab")
    page.keyboard.press("Enter")
    expect(card.locator("[data-status]")).to_have_text("En route")
    server_status_becomes(service, job["id"], "en_route")
    phone.close()


def test_a_technician_asks_for_a_part_nobody_has_and_the_job_waits_for_it(service, browser):
    from playwright.sync_api import expect

    tech = service.technician("Anna Nowak")
    job = service.job()
    service.post(f"/v1/jobs/{job['id']}/assign", {"technician_id": tech["id"], "reason": "regular customer"})
    service.post("/v1/locations", {"code": "CENTRAL", "name": "Central", "kind": "central", "lat": 51.76, "lon": 19.46})
    service.post(
        "/v1/parts", {"sku": "BELT-1200", "name": "Drum belt", "categories": ["washing machine"], "lead_time_hours": 72}
    )

    context, page, card = technician_phone(service, browser, tech, job)
    card.get_by_role("button", name=f"On site, job {job['id']}").click()
    card.get_by_role("button", name=f"Needs parts, job {job['id']}").click()
    card.get_by_label("Part number (SKU)").fill("BELT-1200")
    card.get_by_label("Quantity").fill("2")
    fits_360(page)
    shot(page, "tech-parts-360")
    card.get_by_role("button", name="Ask for part").click()
    server_status_becomes(service, job["id"], "waiting_parts")
    expect(card.locator("[data-status]")).to_have_text("Waiting for parts")
    expect(page.locator("#refused")).to_have_count(0)

    lines = service.get(f"/v1/jobs/{job['id']}/parts")["items"]
    assert [(line["sku"], line["quantity"], line["state"]) for line in lines] == [("BELT-1200", 2, "backordered")]
    context.close()


def test_a_technician_who_cannot_do_the_job_gives_it_back_with_why_from_the_phone(service, browser):
    from playwright.sync_api import expect

    tech = service.technician("Anna Nowak")
    job = service.job()
    service.post(f"/v1/jobs/{job['id']}/assign", {"technician_id": tech["id"], "reason": "regular customer"})

    context, page, card = technician_phone(service, browser, tech, job)
    card.get_by_role("button", name=f"En route, job {job['id']}").click()
    card.get_by_role("button", name=f"Can't do it, job {job['id']}").click()
    card.get_by_label("Why can't you do it?").fill("Van broke down on the S8")
    fits_360(page)
    shot(page, "tech-unable-360")
    card.get_by_role("button", name="Give the job back").click()
    server_status_becomes(service, job["id"], "unable")
    expect(page.locator(f"#job-{job['id']}")).to_have_count(0)  # off my list
    expect(page.locator("#refused")).to_have_count(0)

    back = service.get(f"/v1/jobs/{job['id']}")
    assert back["technician_id"] is None  # for a dispatcher to send someone else
    assert [(e["data"]["to"], e["data"].get("note")) for e in status_changes(service, job["id"])] == [
        ("en_route", None),
        ("unable", "Van broke down on the S8"),
    ]
    context.close()


def test_taps_the_office_refuses_after_the_fact_are_shown_as_not_accepted(service, browser):
    from playwright.sync_api import expect

    tech = service.technician("Anna Nowak")
    job = service.job()
    service.post(f"/v1/jobs/{job['id']}/assign", {"technician_id": tech["id"], "reason": "regular customer"})

    context, page, card = technician_phone(service, browser, tech, job)
    expect(card).to_contain_text("Assigned")

    context.set_offline(True)
    card.get_by_role("button", name=f"En route, job {job['id']}").click()
    expect(page.locator("#outbox-title")).to_have_text("1 waiting to be sent")
    # Meanwhile the office cancels the job (the customer called).
    service.post(f"/v1/jobs/{job['id']}/status", {"status": "cancelled", "at": datetime.now(UTC).isoformat()})
    context.set_offline(False)

    expect(page.locator("#outbox")).to_have_count(0)
    expect(page.locator("#refused")).to_contain_text("En route — job")
    expect(page.locator("#refused")).to_contain_text("cancelled cannot become en_route")
    expect(page.locator(f"#job-{job['id']}")).to_have_count(0)  # off the list once the server is asked again
    shot(page, "tech-refused-360")
    assert service.get(f"/v1/jobs/{job['id']}")["status"] == "cancelled"
    assert [e["data"]["to"] for e in status_changes(service, job["id"])] == ["cancelled"]
    context.close()


def test_an_answer_lost_on_the_way_back_is_retried_with_the_same_key_and_counted_once(service, browser):
    from playwright.sync_api import expect

    tech = service.technician("Anna Nowak")
    job = service.job()
    service.post(f"/v1/jobs/{job['id']}/assign", {"technician_id": tech["id"], "reason": "regular customer"})

    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    attempts: list[str | None] = []

    def lose_the_first_answer(route: Any) -> None:
        attempts.append(route.request.headers.get("idempotency-key"))
        if len(attempts) == 1:
            route.fetch()  # the server does it …
            route.abort("connectionreset")  # … but the phone never hears back
        else:
            route.continue_()

    page.route(f"**/v1/jobs/{job['id']}/status", lose_the_first_answer)
    sign_in(page, service.base_url + "/tech/", service.key("technician", technician_id=tech["id"]))
    card = page.locator(f"#job-{job['id']}")
    card.get_by_role("button", name=f"En route, job {job['id']}").click()
    expect(page.locator("#outbox-title")).to_have_text("1 waiting to be sent")
    expect(page.locator("#outbox")).to_have_count(0)  # the next round sends it again
    expect(page.locator("#refused")).to_have_count(0)

    assert len(attempts) == 2 and attempts[0] == attempts[1] and attempts[0], attempts
    assert [e["data"]["to"] for e in status_changes(service, job["id"])] == ["en_route"]
    context.close()


def test_chromium_finds_the_technician_app_installable(service, playwright, tmp_path):
    # A real profile (not an incognito-like context), as installing needs one.
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True, **PHONE
    )
    try:
        page = context.new_page()
        page.goto(service.base_url + "/tech/")
        assert page.evaluate("navigator.serviceWorker.ready.then((r) => r.active.scriptURL)").endswith("/tech/sw.js")
        cdp = context.new_cdp_session(page)
        assert cdp.send("Page.getAppManifest").get("errors") == []
        assert cdp.send("Page.getInstallabilityErrors")["installabilityErrors"] == []
    finally:
        context.close()


def test_a_dispatcher_sees_the_visit_and_photo_calls_back_and_sends_the_technician_back(service, browser):
    from playwright.sync_api import expect

    tech = service.technician("Anna Nowak")
    job = service.job()
    jid = job["id"]
    service.post(f"/v1/jobs/{jid}/assign", {"technician_id": tech["id"], "reason": "regular customer"})
    for step in ("en_route", "on_site"):
        service.post(f"/v1/jobs/{jid}/status", {"status": step, "at": datetime.now(UTC).isoformat()})
    r = service.http.post(f"/v1/jobs/{jid}/photos", files={"file": ("signoff.png", tiny_png(), "image/png")})
    assert r.status_code == 201, r.text
    service.post(f"/v1/jobs/{jid}/signoff", {"signer_name": "Maria Dąbrowska", "photo_id": r.json()["id"]})
    service.post(f"/v1/jobs/{jid}/status", {"status": "completed", "at": datetime.now(UTC).isoformat()})

    context = browser.new_context(**DESKTOP)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    sign_in(page, service.base_url + "/console/", service.key("dispatcher"))
    expect(page.locator("#board")).to_be_visible()
    # The call list: completed, not called yet.
    expect(page.locator("#call-panel")).to_contain_text(f"#{jid} Maria Dąbrowska")
    page.goto(service.base_url + f"/console/#/jobs/{jid}")
    expect(page.locator("#job-visits")).to_contain_text("Visit 1")
    expect(page.locator("#job-photos img")).to_have_attribute("src", re.compile(r"^blob:"))
    expect(page.get_by_role("button", name="Dispatch nearest")).to_be_disabled()

    page.get_by_label("Satisfaction (1–5)").select_option("5")
    page.get_by_role("button", name="Record callback").click()
    expect(page.locator("#callback-result")).to_contain_text("Callback recorded")
    expect(page.locator("#job-callbacks")).to_contain_text("reached · fixed · 5/5")
    expect(page.locator("#job-summary")).to_contain_text("Closed")
    shot(page, "console-job-closed")

    page.get_by_label("Reason", exact=True).nth(1).select_option("fault_returned")
    page.get_by_role("button", name="Request return visit").click()
    expect(page.locator("#return-visit-result")).to_contain_text("Return visit requested")
    expect(page.locator("#job-visits")).to_contain_text("Visit 2")
    assert service.get(f"/v1/jobs/{jid}")["status"] in ("assigned", "ready")
    context.close()


# ---------------------------------------------------------------------------------------------
# Issue 13, items 11–16: the people's side, tried as a dispatcher and a technician would.


def test_the_board_is_sorted_by_urgency_shows_the_priority_and_queues_jobs_that_need_a_person(service, browser):
    from playwright.sync_api import expect

    service.technician("Anna Nowak", capacity=5)
    now = datetime.now(UTC)
    fresh = service.job(customer={"name": "Fresh Standard"})
    express = service.job(customer={"name": "Express Customer"}, service_tier="express")
    emergency = service.job(
        customer={"name": "Late Emergency"}, priority="emergency", reported_at=(now - timedelta(hours=3)).isoformat()
    )
    older = service.job(customer={"name": "Older Standard"}, reported_at=(now - timedelta(hours=1)).isoformat())
    sofa = service.job(customer={"name": "Sofa Owner"}, product={"category": "sofa"})

    context = browser.new_context(**DESKTOP)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    sign_in(page, service.base_url + "/console/", service.key("dispatcher"))
    rows = page.locator("#board tbody tr")
    expect(rows).to_have_count(4)
    order = [emergency, express, older, fresh]  # breached emergency, 2 h, 23 h, 24 h
    for i, job in enumerate(order):
        expect(rows.nth(i)).to_contain_text(f"#{job['id']}")
    expect(rows.nth(0)).to_contain_text("Emergency")
    expect(rows.nth(0)).to_contain_text("Breached")
    expect(rows.nth(1)).to_contain_text("express")
    # A job nobody can be sent to is not "on track" at the bottom: it has a queue of its own.
    queue = page.locator("#attention-queue")
    expect(queue).to_be_visible()
    expect(queue.locator("tbody tr")).to_have_count(1)
    expect(queue).to_contain_text(f"#{sofa['id']}")
    expect(queue).to_contain_text("Nobody has the skill")
    shot(page, "console-board-urgency")
    context.close()


def _focused_is(page: Any, handle: Any) -> bool:
    return page.evaluate("(el) => document.activeElement === el", handle)


def test_a_poll_never_takes_the_keyboard_focus_away_on_the_board_or_the_phone(service, browser):
    from playwright.sync_api import expect

    tech = service.technician("Anna Nowak", capacity=5)
    first = service.job(customer={"name": "First Customer"})
    second = service.job(customer={"name": "Second Customer"})
    service.post(f"/v1/jobs/{first['id']}/assign", {"technician_id": tech["id"], "reason": "regular customer"})

    context = browser.new_context(**DESKTOP)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    sign_in(page, service.base_url + "/console/", service.key("dispatcher"))
    link = page.locator("#board tbody").get_by_role("link", name=f"#{second['id']}")
    link.focus()
    handle = link.element_handle()
    # A breached job comes in and goes to the top: the next poll moves the focused row down.
    late = service.job(
        customer={"name": "Late Customer"}, reported_at=(datetime.now(UTC) - timedelta(hours=25)).isoformat()
    )
    expect(page.locator("#board tbody tr").first).to_contain_text(f"#{late['id']}", timeout=TIMEOUT_MS)
    assert _focused_is(page, handle), "the poll threw the focus away"
    page.keyboard.press("Enter")  # and the dispatcher carries on where they were
    expect(page.locator("#job-title")).to_contain_text(f"Job #{second['id']}")
    context.close()

    context, phone, card = technician_phone(service, browser, tech, first)
    call = card.get_by_role("link", name="Call First Customer")
    call.focus()
    handle = call.element_handle()
    service.post(f"/v1/jobs/{second['id']}/assign", {"technician_id": tech["id"], "reason": "on the way"})
    expect(phone.locator(f"#job-{second['id']}")).to_be_visible(timeout=TIMEOUT_MS)  # fetched and repainted
    assert _focused_is(phone, handle), "the repaint threw the focus away"
    context.close()


def _no_overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] + a["width"] <= b["x"] + 0.5
        or b["x"] + b["width"] <= a["x"] + 0.5
        or a["y"] + a["height"] <= b["y"] + 0.5
        or b["y"] + b["height"] <= a["y"] + 0.5
    )


def test_the_job_page_fits_1440_px_and_the_panels_leave_the_board_alone_at_1024(service, browser):
    from playwright.sync_api import expect

    tech = service.technician("Bartłomiej Wojciechowski-Grabowski", home_branch="WAW-CENTRUM-POŁUDNIE")
    for i in range(12):
        service.technician(f"Technician {i} Konstantynopolitańczykiewicz", lat=52.2 + i / 100, lon=21.0)
    job = service.job(customer={"name": "Maria Dąbrowska-Wiśniewska", "address": "Aleje Jerozolimskie 123A, Warszawa"})
    service.post(f"/v1/jobs/{job['id']}/assign", {"technician_id": tech["id"], "reason": "regular customer"})
    for _ in range(3):
        service.job(customer={"name": "Another Customer With A Long Name"})
    key = service.key("dispatcher")

    context = browser.new_context(viewport={"width": 1440, "height": 900}, timezone_id="UTC", locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    sign_in(page, service.base_url + f"/console/#/jobs/{job['id']}", key)
    expect(page.locator("#job-timeline")).to_contain_text("assigned")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1440
    aside = page.locator("aside.actions").bounding_box()
    assert aside["x"] + aside["width"] <= 1440
    shot(page, "console-job-1440")
    context.close()

    context = browser.new_context(viewport={"width": 1024, "height": 800}, timezone_id="UTC", locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    sign_in(page, service.base_url + "/console/", key)
    expect(page.locator("#board tbody tr")).to_have_count(4)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024
    board = page.locator("#board").bounding_box()
    for panel in ("#at-risk-panel", "#breaches-panel", "#parts-panel", "#call-panel"):
        if page.locator(panel).is_visible():
            assert _no_overlap(board, page.locator(panel).bounding_box()), f"{panel} covers the board"
    shot(page, "console-board-1024")
    context.close()


def test_the_callback_form_offers_only_what_a_call_can_say_and_says_when_to_retry(service, browser):
    from playwright.sync_api import expect

    tech = service.technician("Anna Nowak", capacity=2)
    open_job = service.job(customer={"name": "Still Open"})
    service.post(f"/v1/jobs/{open_job['id']}/assign", {"technician_id": tech["id"], "reason": "regular customer"})
    done = service.job(customer={"name": "Ewa Done"})
    service.post(f"/v1/jobs/{done['id']}/assign", {"technician_id": tech["id"], "reason": "regular customer"})
    for step in ("on_site", "completed"):
        service.post(f"/v1/jobs/{done['id']}/status", {"status": step, "at": datetime.now(UTC).isoformat()})

    context = browser.new_context(**DESKTOP)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    sign_in(page, service.base_url + f"/console/#/jobs/{open_job['id']}", service.key("dispatcher"))
    expect(page.locator("#job-summary")).to_contain_text("Assigned")
    expect(page.get_by_role("button", name="Record callback")).to_be_disabled()  # not completed: no call yet
    expect(page.locator("#callback-form")).to_contain_text("once the job is completed")

    page.goto(service.base_url + f"/console/#/jobs/{done['id']}")
    expect(page.locator("#job-summary")).to_contain_text("Completed")
    expect(page.get_by_role("button", name="Record callback")).to_be_enabled()
    page.get_by_label("Customer reached").uncheck()
    expect(page.get_by_label("Fault fixed")).to_be_disabled()
    expect(page.get_by_label("Satisfaction (1–5)")).to_be_disabled()
    page.get_by_role("button", name="Record callback").click()
    expect(page.locator("#callback-result")).to_contain_text("Call again after")
    expect(page.locator("#job-callbacks")).to_contain_text("not reached · call again after")
    shot(page, "console-callback-unreached")
    [callback] = service.get(f"/v1/jobs/{done['id']}/callbacks")["items"]
    assert (callback["reached"], callback["fixed"], callback["satisfaction"]) == (False, None, None)

    # The call list keeps the customer, saying when to try again, instead of dropping them.
    page.get_by_role("link", name="← Board").click()
    expect(page.locator("#call-panel")).to_contain_text(f"#{done['id']} Ewa Done")
    expect(page.locator("#call-panel")).to_contain_text("call again after", timeout=TIMEOUT_MS)
    context.close()


def _technician_position(service: Service, technician_id: int) -> tuple[float, float, str | None]:
    t = service.get(f"/v1/technicians/{technician_id}")
    return t["lat"], t["lon"], t["location_at"]


def _position_becomes(service: Service, technician_id: int, lat: float, lon: float, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _technician_position(service, technician_id)[:2] != (lat, lon):
        assert time.monotonic() < deadline, (
            f"technician {technician_id} is still at {_technician_position(service, technician_id)}"
        )
        time.sleep(0.1)


def test_the_phone_sends_its_position_with_a_tap_and_while_en_route_when_allowed(service, browser):
    from playwright.sync_api import expect

    tech = service.technician("Anna Nowak", lat=52.40, lon=21.00)  # where she started the day
    job = service.job()
    service.post(f"/v1/jobs/{job['id']}/assign", {"technician_id": tech["id"], "reason": "regular customer"})
    here = {"latitude": 52.2301, "longitude": 21.0111}
    context = browser.new_context(**PHONE, geolocation=here, permissions=["geolocation"])
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.clock.install()
    sign_in(page, service.base_url + "/tech/", service.key("technician", technician_id=tech["id"]))
    card = page.locator(f"#job-{job['id']}")
    expect(page.get_by_label("Send my position")).to_be_checked()
    card.get_by_role("button", name=f"En route, job {job['id']}").click()
    server_status_becomes(service, job["id"], "en_route")
    _position_becomes(service, tech["id"], 52.2301, 21.0111)  # with the tap, or right after it
    [change] = status_changes(service, job["id"])
    assert change["data"].get("lat") in (None, 52.2301)  # carried if the first fix came before the tap

    # On the way: a report every minute, from wherever the van is now.
    context.set_geolocation({"latitude": 52.2250, "longitude": 21.0090})
    page.clock.fast_forward("01:05")
    _position_becomes(service, tech["id"], 52.2250, 21.0090)
    _, _, at = _technician_position(service, tech["id"])
    assert at is not None
    shot(page, "tech-position-360")
    context.close()


def test_a_tap_never_waits_for_a_position_that_is_refused_or_slow(service, browser):
    from playwright.sync_api import expect

    denied_tech = service.technician("Denied Dorota", lat=52.40, lon=21.00)
    slow_tech = service.technician("Slow Stefan", lat=52.41, lon=21.01)
    jobs = {}
    for tech in (denied_tech, slow_tech):
        jobs[tech["id"]] = service.job()
        service.post(f"/v1/jobs/{jobs[tech['id']]['id']}/assign", {"technician_id": tech["id"], "reason": "x"})

    # Refused: geolocation is not granted to the app.
    denied = browser.new_context(**PHONE)
    # Slow: the phone has no fix and never answers.
    slow = browser.new_context(**PHONE, permissions=["geolocation"])
    slow.add_init_script("navigator.geolocation.getCurrentPosition = () => {};")
    for context, tech in ((denied, denied_tech), (slow, slow_tech)):
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        sign_in(page, service.base_url + "/tech/", service.key("technician", technician_id=tech["id"]))
        job = jobs[tech["id"]]
        card = page.locator(f"#job-{job['id']}")
        card.get_by_role("button", name=f"En route, job {job['id']}").click()
        expect(card.locator("[data-status]")).to_have_text("En route")
        server_status_becomes(service, job["id"], "en_route", timeout=5)
        expect(page.locator("#outbox")).to_have_count(0)
        [change] = status_changes(service, job["id"])
        assert "lat" not in change["data"]
        assert _technician_position(service, tech["id"])[:2] == (tech["lat"], tech["lon"])
        context.close()
