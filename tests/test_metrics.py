"""KPIs grouped and by period: every row is what the definitions (docs/sla.md) give for that
row's jobs alone, and paging the rows changes nothing but how many come at once."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy import select
from support.workflow import assign, tap

from dispatch.closeout.models import JobCallback
from dispatch.jobs.lifecycle import OPEN
from dispatch.jobs.models import Job
from dispatch.metrics.schemas import Metrics
from dispatch.technicians.models import Technician
from dispatch.visits.models import Visit

MONTH = {"since": "2026-03-01", "until": "2026-04-01"}
STAGES = ("dispatch", "assigned", "travel", "on_site", "parts", "customer")


def a_fortnight_of_work(api) -> None:  # type: ignore[no-untyped-def]
    """Three technicians in two branches; jobs reported over nine days (two ISO weeks) in every
    policy and three categories: completed after different waits (some called back, one
    reopened), cancelled, still open."""
    skills = ["washing machine", "refrigerator", "oven"]
    techs = [api.technician(capacity=50, skills=skills, home_branch=b) for b in ("WAW", "KRK", "WAW")]
    for i in range(24):
        job = api.job(
            # Even ones reported just now (done within a day), odd ones up to eight days back.
            reported_at=(api.clock.now() - timedelta(days=i % 9 if i % 2 else 0, hours=i % 5)).isoformat(),
            service_tier="express" if i % 4 == 1 else "standard",
            priority="emergency" if i % 7 == 3 else "normal",
            product={"category": skills[i % 3]},
        )
        tech, action = techs[i % 3], i % 6
        if action == 5:
            continue  # still new
        if action == 3:
            tap(api, job, "cancelled")  # by the dispatcher
            continue
        assign(api, job, tech)
        if action == 4:
            continue  # assigned, open
        phone = api.as_technician(tech["id"])
        api.clock.advance(minutes=7 * i)
        tap(api, job, "on_site", phone=phone)
        api.clock.advance(minutes=40)
        tap(api, job, "completed", phone=phone)
        if i % 2 == 0:
            api.post(f"/v1/jobs/{job['id']}/callbacks", {"reached": False})
            r = api.post(
                f"/v1/jobs/{job['id']}/callbacks", {"reached": True, "fixed": i != 6, "satisfaction": i % 5 + 1}
            )
            assert r.status_code in (200, 201), r.text
        if i == 6:
            r = api.post(f"/v1/jobs/{job['id']}/return-visits", {"reason": "callback_not_fixed"})
            assert r.status_code in (200, 201), r.text
    api.clock.advance(hours=30)  # some open deadlines have passed: missed


def kpis(jobs: list[Job], first_fixed: dict[int, int], calls: dict[int, list[JobCallback]], now: Any) -> dict[str, Any]:
    """The KPIs of these jobs, job by job, as docs/sla.md defines them: the ungrouped answer for
    exactly these jobs."""
    counted = [j for j in jobs if j.status != "cancelled"]
    done = [j for j in counted if j.resolution_seconds is not None and j.completed_at is not None]
    times = sorted(j.resolution_seconds for j in done)
    within = sum(j.resolution_seconds <= 86_400 for j in done)
    sla: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for j in counted:
        if j.completed_at is not None or j.due_at <= now:
            sla[(j.sla_policy, "completion")][j.completed_at is None or j.completed_at > j.due_at] += 1
        if j.arrival_due_at is not None and (j.arrived_at is not None or j.arrival_due_at <= now):
            sla[(j.sla_policy, "arrival")][j.arrived_at is None or j.arrival_missed] += 1
    fixed = [j for j in counted if j.id in first_fixed]
    called = [j for j in counted if j.id in calls]
    made = [c for j in called for c in calls[j.id]]
    scores = [c.satisfaction for c in made if c.satisfaction is not None]
    n = len(counted)
    seconds = {s: sum(getattr(j, f"seconds_{s}") for j in counted) for s in STAGES}

    def rate(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    return {
        "jobs": len(jobs),
        "cancelled": len(jobs) - n,
        "open": sum(j.status in OPEN for j in jobs),
        "completed": len(done),
        "completed_within_24h": within,
        "completion_rate_24h": rate(within, n),
        "mean_hours_to_complete": round(sum(times) / len(times) / 3600, 2) if times else None,
        "p90_hours_to_complete": round(times[math.ceil(0.9 * len(times)) - 1] / 3600, 2) if times else None,
        "first_time_fix_rate": rate(sum(first_fixed[j.id] == 1 and j.return_visits == 0 for j in fixed), len(fixed)),
        "return_visit_rate": rate(sum(j.return_visits > 0 for j in fixed), len(fixed)),
        "callbacks": len(made),
        "callback_reach_rate": rate(sum(c.reached for c in made), len(made)),
        "jobs_reached_by_callback": rate(sum(any(c.reached for c in calls[j.id]) for j in called), len(called)),
        "mean_satisfaction": round(sum(scores) / len(scores), 2) if scores else None,
        "sla_compliance": [
            {"policy": p, "deadline": d, "met": met, "missed": missed, "compliance": round(met / (met + missed), 4)}
            for (p, d), (met, missed) in sorted(sla.items())
        ],
        "hours": {s: round(v / 3600, 2) for s, v in seconds.items()},
        "hours_per_job": {s: round(v / 3600 / n, 2) if n else None for s, v in seconds.items()},
    }


def expected_rows(api, group_by: str, interval: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Every (period, group) with its jobs, each row computed from those jobs alone."""
    with api.database.transaction(write=False) as s:
        jobs = list(s.scalars(select(Job)))
        branch = {t.id: t.home_branch for t in s.scalars(select(Technician))}
        first_fixed: dict[int, int] = {}
        for v in s.scalars(select(Visit).where(Visit.outcome == "fixed")):
            first_fixed[v.job_id] = min(first_fixed.get(v.job_id, v.number), v.number)
        calls: dict[int, list[JobCallback]] = defaultdict(list)
        for c in s.scalars(select(JobCallback)):
            calls[c.job_id].append(c)
        s.expunge_all()

    def period(job: Job) -> str | None:
        if interval == "none":
            return None
        day = job.reported_at.astimezone(UTC).date()
        return str({"day": day, "week": day - timedelta(days=day.weekday()), "month": day.replace(day=1)}[interval])

    def group(job: Job) -> str | None:
        value = {
            "none": None,
            "technician": job.technician_id,
            "outlet": job.outlet_id,
            "category": job.product_category,
            "branch": branch.get(job.technician_id) if job.technician_id else None,
        }[group_by]
        return None if value is None else str(value)

    buckets: dict[tuple[str | None, str | None], list[Job]] = defaultdict(list)
    for job in jobs:
        buckets[(period(job), group(job))].append(job)
    now = api.clock.now()
    return [
        {"period": p, "group": g, **kpis(js, first_fixed, calls, now)}
        for (p, g), js in sorted(buckets.items(), key=lambda kv: (kv[0][0] or "", kv[0][1] or ""))
    ]


def test_every_grouped_row_is_the_kpis_of_its_own_jobs(api):
    a_fortnight_of_work(api)
    seen_groups = 0
    for group_by in ("none", "technician", "branch", "category", "outlet"):
        for interval in ("none", "day", "week", "month"):
            r = api.get("/v1/metrics", who="supervisor", params={**MONTH, "group_by": group_by, "interval": interval})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["next_cursor"] is None
            assert body["rows"] == expected_rows(api, group_by, interval), (group_by, interval)
            seen_groups = max(seen_groups, len(body["rows"]))
    # The data is not trivial: several groups and periods, every policy, fixes, callbacks, a reopen.
    (total,) = api.get("/v1/metrics", who="supervisor", params=MONTH).json()["rows"]
    assert seen_groups >= 12 and (total["jobs"], total["cancelled"], total["open"], total["completed"]) == (
        24,
        4,
        9,
        11,
    )
    assert 0 < total["completed_within_24h"] < total["completed"]
    compliance = {(c["policy"], c["deadline"]): (c["met"], c["missed"]) for c in total["sla_compliance"]}
    assert {p for p, _ in compliance} == {"standard", "express", "emergency"} and min(
        compliance["standard", "completion"]
    ) > 0
    assert total["return_visit_rate"] and total["callbacks"] == 16 and total["mean_satisfaction"]


def test_a_period_without_jobs_has_no_rows(api):
    a_fortnight_of_work(api)
    for params in ({}, {"interval": "day"}, {"group_by": "technician"}):
        r = api.get("/v1/metrics", who="supervisor", params={"since": "2026-01-01", "until": "2026-02-01", **params})
        assert r.status_code == 200 and r.json()["rows"] == [], r.text


def test_grouped_rows_come_a_page_at_a_time_and_add_up_to_the_whole_answer(api):
    a_fortnight_of_work(api)
    params = {**MONTH, "group_by": "technician", "interval": "day"}
    whole = api.get("/v1/metrics", who="supervisor", params=params).json()["rows"]
    pages, cursor = [], None
    while True:
        r = api.get(
            "/v1/metrics", who="supervisor", params={**params, "limit": 4, **({"cursor": cursor} if cursor else {})}
        )
        assert r.status_code == 200, r.text
        pages.append(r.json()["rows"])
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert len(whole) > 8 and all(len(p) == 4 for p in pages[:-1]) and 1 <= len(pages[-1]) <= 4
    assert [row for page in pages for row in page] == whole
    last = api.get("/v1/metrics", who="supervisor", params={**params, "limit": len(whole)}).json()
    assert last["rows"] == whole and last["next_cursor"] is None

    bad = api.get("/v1/metrics", who="supervisor", params={**params, "limit": 4, "cursor": "bm90LWEtY3Vyc29y"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid-cursor"
    csv = api.get("/v1/metrics", who="supervisor", params={**params, "limit": 4, "format": "csv"})
    assert csv.status_code == 422 and csv.json()["code"] == "invalid-paging"
    assert api.get("/v1/metrics", who="supervisor", params={**params, "limit": 0}).status_code == 422


def test_the_body_is_exactly_what_the_response_model_describes(api):
    # The route writes the rows without building the model (5,000 rows cost more than the query);
    # each body must still be what the model would make of it: every field, nothing else, same types.
    a_fortnight_of_work(api)
    for params in ({}, {"group_by": "branch", "interval": "week"}, {"group_by": "technician", "limit": 2}):
        r = api.get("/v1/metrics", who="supervisor", params={**MONTH, **params})
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        model = Metrics.model_validate_json(r.content)
        assert model.model_dump(mode="json") == r.json() and model.model_dump_json().encode() == r.content
