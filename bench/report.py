"""Tables for the terminal (rich) and for docs/benchmarks.md (markdown), and the targets."""

from __future__ import annotations

import math
import os
import platform
import sqlite3
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, make_url, text

BEGIN = "<!-- bench:begin (written by bench/run.py; edit outside these markers) -->"
END = "<!-- bench:end -->"

# The targets.
P50_MAX_MS = 1.0
P99_MAX_MS = 5.0
SCALING_MAX = 3.0
INTAKE_RATIO_MIN = {"postgresql": 0.25, "sqlite": 0.15}
INTAKE_P99_MAX_MS = 100.0


def machine_facts(pg_url: str) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "cores": os.cpu_count(),
        "cpu": "",
        "memory_gb": None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "packages": {p: _version(p) for p in ("sqlalchemy", "fastapi", "uvicorn", "pydantic", "geopy", "psycopg")},
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                facts["memory_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        engine = create_engine(make_url(pg_url).set(drivername="postgresql+psycopg"))
        with engine.connect() as conn:
            facts["postgresql"] = conn.execute(text("SHOW server_version")).scalar()
        engine.dispose()
    except Exception as exc:
        facts["postgresql"] = f"unavailable ({type(exc).__name__})"
    try:
        root = Path(__file__).resolve().parents[1]
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        facts["commit"] = commit + (" + uncommitted changes in src/" if dirty else "")
    except OSError:
        facts["commit"] = "unknown"
    return facts


def _version(package: str) -> str:
    try:
        return version(package)
    except Exception:
        return "-"


def _f(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


# --------------------------------------------------------------------------- selection


def selection_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    head = [
        "DB",
        "layout",
        "N",
        "queries",
        "agree",
        "p50 ms",
        "p99 ms",
        "p50 / p50(1k)",
        "SELECTs",
        "naive p50 ms (queries)",
        "naive / service",
        "GiST p50 ms",
        "GiST p99 ms",
        "GiST agree",
        "service / GiST",
        "machine busy (cores)",
    ]
    by = {(r["dialect"], r["layout"], r["n"], r["approach"]): r for r in rows}
    keys = sorted(
        {(r["dialect"], r["layout"], r["n"]) for r in rows}, key=lambda k: (k[0] != "sqlite", k[1] != "uniform", k[2])
    )
    smallest = {}
    for d, l, n in keys:
        smallest.setdefault((d, l), n)
    out = []
    for d, l, n in keys:
        s = by.get((d, l, n, "service"))
        if s is None:
            continue
        base = by.get((d, l, smallest[(d, l)], "service"))
        naive = by.get((d, l, n, "naive"))
        gist = by.get((d, l, n, "gist"))
        out.append(
            [
                d,
                l,
                _f(n),
                _f(s["queries"]),
                f"{s['agree']}/{s['checked']}",
                _f(s["p50_ms"], 3),
                _f(s["p99_ms"], 3),
                _f(s["p50_ms"] / base["p50_ms"], 2) if base else "—",
                _f(s.get("selects_mean"), 2),
                f"{_f(naive['p50_ms'], 1)} ({naive['queries']})" if naive else "—",
                _f(naive["p50_ms"] / s["p50_ms"], 0) + "×" if naive else "—",
                _f(gist["p50_ms"], 3) if gist else "—",
                _f(gist["p99_ms"], 3) if gist else "—",
                f"{gist['agree']}/{gist['checked']}" if gist else "—",
                _f(s["p50_ms"] / gist["p50_ms"], 2) + "×" if gist else "—",
                _f(s.get("machine_busy_cores"), 2),
            ]
        )
    return head, out


def selection_targets(rows: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for each database and layout at the largest N."""
    out = []
    services = [r for r in rows if r["approach"] == "service"]
    if not services:
        return out
    agree = sum(r["agree"] for r in services)
    checked = sum(r["checked"] for r in services)
    out.append(
        (
            "selection agrees with the oracle on every query (all DBs, layouts, N)",
            f"{agree}/{checked}",
            agree == checked,
        )
    )
    biggest = max(r["n"] for r in services)
    smallest = min(r["n"] for r in services)
    for r in sorted(services, key=lambda r: (r["dialect"] != "sqlite", r["layout"] != "uniform")):
        if r["n"] != biggest:
            continue
        name = f"{r['dialect']}, {r['layout']}, N={biggest:,}"
        out.append((f"p50 ≤ {P50_MAX_MS:g} ms ({name})", f"{r['p50_ms']:.3f} ms", r["p50_ms"] <= P50_MAX_MS))
        out.append((f"p99 ≤ {P99_MAX_MS:g} ms ({name})", f"{r['p99_ms']:.3f} ms", r["p99_ms"] <= P99_MAX_MS))
        base = next(
            (b for b in services if b["dialect"] == r["dialect"] and b["layout"] == r["layout"] and b["n"] == smallest),
            None,
        )
        if base and smallest != biggest:
            ratio = r["p50_ms"] / base["p50_ms"]
            out.append(
                (
                    f"p50(N={biggest:,}) ≤ {SCALING_MAX:g} × p50(N={smallest:,}) ({r['dialect']}, {r['layout']})",
                    f"{ratio:.2f}×",
                    ratio <= SCALING_MAX,
                )
            )
    return out


# --------------------------------------------------------------------------- intake


def intake_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    head = [
        "server",
        "rps",
        "p50 ms",
        "p99 ms",
        "max ms",
        "requests",
        "errors",
        "time-outs",
        "dispatched",
        "server CPU",
        "CPU ms / request",
        "load-generator CPU",
        "machine busy (cores)",
        "app / bare",
    ]
    out = []
    for r in rows:
        out.append(
            [
                r["server"],
                _f(r["rps"], 1),
                _f(r["p50_ms"], 1),
                _f(r["p99_ms"], 1),
                _f(r["max_ms"], 1),
                _f(r["requests"]),
                _f(r["errors"]),
                _f(r["timeouts"]),
                f"{r['assigned_share']:.1%}" if "ratio" in r and not math.isnan(r["assigned_share"]) else "—",
                f"{r['server_cpu_share']:.0%}" if not math.isnan(r["server_cpu_share"]) else "—",
                _f(r["server_cpu_share"] / r["rps"] * 1000, 2)
                if r["rps"] and not math.isnan(r["server_cpu_share"])
                else "—",
                f"{r['client_cpu_share']:.0%}" if not math.isnan(r["client_cpu_share"]) else "—",
                _f(r.get("machine_busy_cores"), 2),
                _f(r.get("ratio"), 3) if "ratio" in r else "",
            ]
        )
    return head, out


def intake_targets(rows: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    out = []
    for r in rows:
        if "ratio" not in r or r.get("idempotency_keys"):  # the Idempotency-Key rows are for comparison
            continue
        dialect = "sqlite" if r["pair"].startswith("sqlite") else "postgresql"
        official = dialect == "postgresql" or "FULL" in r["pair"]
        tag = "" if official else " (extra row, not the target configuration)"
        minimum = INTAKE_RATIO_MIN[dialect]
        out.append(
            (
                f"{r['pair']}: rps ≥ {minimum:g} × bare{tag}",
                f"{r['ratio']:.3f} ({r['rps']:.0f} / {r['bare_rps']:.0f} rps)",
                r["ratio"] >= minimum,
            )
        )
        out.append(
            (
                f"{r['pair']}: p99 ≤ {INTAKE_P99_MAX_MS:g} ms{tag}",
                f"{r['p99_ms']:.1f} ms",
                r["p99_ms"] <= INTAKE_P99_MAX_MS,
            )
        )
        out.append(
            (
                f"{r['pair']}: no errors or time-outs{tag}",
                f"{r['errors']} errors, {r['timeouts']} time-outs of {r['requests']:,}",
                r["errors"] == 0 and r["timeouts"] == 0,
            )
        )
    return out


# --------------------------------------------------------------------------- parts


def _states(r: dict[str, Any]) -> list[str]:
    shares = r.get("state_shares") or {}
    return [f"{shares.get(k, 0.0):.0%}" for k in ("reserved", "in_transit", "backordered")]


def reservation_table(parts: dict[str, Any] | None) -> tuple[list[str], list[list[str]]]:
    head = [
        "DB",
        "workload",
        "rps",
        "p50 ms",
        "p99 ms",
        "max ms",
        "requests",
        "non-2xx",
        "time-outs",
        "reserved",
        "in transit",
        "backordered",
        "server CPU",
        "CPU ms / request",
        "load-generator CPU",
        "machine busy (cores)",
        "rps / stocked 20 SKUs",
    ]
    out: list[list[str]] = []
    if not parts:
        return head, out
    rows = parts["reservation"]
    base = {r["dialect"]: r["rps"] for r in rows if r["workload"] == "stocked, 20 SKUs"}
    for r in rows:
        b = base.get(r["dialect"])
        out.append(
            [
                r["dialect"],
                r["workload"],
                _f(r["rps"], 1),
                _f(r["p50_ms"], 1),
                _f(r["p99_ms"], 1),
                _f(r["max_ms"], 1),
                _f(r["requests"]),
                _f(r["errors"]),
                _f(r["timeouts"]),
                *_states(r),
                f"{r['server_cpu_share']:.0%}" if not math.isnan(r["server_cpu_share"]) else "—",
                _f(r["server_cpu_share"] / r["rps"] * 1000, 2)
                if r["rps"] and not math.isnan(r["server_cpu_share"])
                else "—",
                f"{r['client_cpu_share']:.0%}" if not math.isnan(r["client_cpu_share"]) else "—",
                _f(r.get("machine_busy_cores"), 2),
                _f(r["rps"] / b, 2) if b else "—",
            ]
        )
    return head, out


def backorders_table(parts: dict[str, Any] | None) -> tuple[list[str], list[list[str]]]:
    head = [
        "DB",
        "receipt at",
        "backorders",
        "pieces received",
        "receipts",
        "wall s (median)",
        "wall s (min–max)",
        "ms / backorder",
        "server CPU s",
        "filled",
        "most urgent first",
        "stock adds up",
        "jobs afterwards",
        "machine busy (cores)",
        "other requests: p50 ms before",
        "slowest ms during (requests)",
    ]
    out: list[list[str]] = []
    if not parts:
        return head, out
    for r in parts["backorders"]:
        out.append(
            [
                r["dialect"],
                f"{r['at']} ({r['kind']})",
                _f(r["backorders"]),
                _f(r["received"]),
                _f(r["receipts"]),
                _f(r["wall_s"], 2),
                f"{r['wall_min_s']:.2f}–{r['wall_max_s']:.2f}",
                _f(r["ms_per_backorder"], 2),
                _f(r["server_cpu_s"], 2),
                " / ".join(_f(x) for x in r["filled"]),
                "yes" if r["in_due_order"] else "**NO**",
                "yes" if r["stock_ok"] else "**NO**",
                ", ".join(f"{k} {v:,}" for k, v in sorted((r.get("job_statuses") or {}).items())),
                _f(r.get("machine_busy_cores"), 2),
                _f(r.get("probe_before_p50_ms"), 1),
                f"{_f(r['probe_during_max_ms'], 0)} ({r['probe_during']})" if "probe_during" in r else "—",
            ]
        )
    return head, out


# --------------------------------------------------------------------------- sla

SLA_BEGIN = "<!-- bench:sla:begin (written by bench/run.py --only sla; edit outside these markers) -->"
SLA_END = "<!-- bench:sla:end -->"


def _median(rows: list[dict[str, Any]], key: str) -> float:
    values = sorted(r[key] for r in rows)
    return values[len(values) // 2] if values else math.nan


def sla_table(sla: dict[str, Any] | None) -> tuple[list[str], list[list[str]]]:
    head = [
        "DB",
        "jobs",
        "open",
        "at risk or breached",
        "at-risk p50 ms",
        "at-risk p99 ms",
        "in-process p50 ms",
        "next pages p50 ms (pages)",
        "backlog pass s (fired)",
        "its predict s",
        "steady pass s",
        "its predict s",
        "cold predict s (set)",
        "month's jobs",
        "metrics p50 ms",
        "by technician p50 ms",
        "by day p50 ms",
        "metrics in-process p50 ms",
        "load s",
        "machine busy (cores)",
    ]
    out: list[list[str]] = []
    if not sla:
        return head, out
    for dialect, r in sla["databases"].items():
        h, ip, w, d = r["http"], r["inprocess"], r["watcher"], r["data"]
        backlog = w["backlog_passes"]
        first = backlog[0] if backlog else None
        out.append(
            [
                dialect,
                _f(d["open"] + sum(v for k, v in d["jobs_by_status"].items() if k in ("completed", "cancelled"))),
                _f(d["open"]),
                _f(d["at_risk_or_breached"]),
                _f(h["at_risk_first"]["p50_ms"], 1),
                _f(h["at_risk_first"]["p99_ms"], 1),
                _f(ip["at_risk_service"]["p50_ms"], 1),
                f"{_f(h['at_risk_walk']['p50_ms'], 1)} ({h['at_risk_walk']['pages']})",
                f"{_f(first['seconds'], 2)} ({_f(first['fired'])})" if first else "—",
                _f(first["predict_s"], 2) if first else "—",
                _f(_median(w["steady_passes"], "seconds"), 2),
                _f(_median(w["steady_passes"], "predict_s"), 2),
                f"{_f(w['cold_predict']['seconds'], 1)} ({_f(w['cold_predict']['set'])})",
                _f(ip["metrics_jobs"]),
                _f(h["metrics_none"]["p50_ms"], 0),
                _f(h["metrics_technician"]["p50_ms"], 0),
                _f(h["metrics_day"]["p50_ms"], 0),
                _f(ip["metrics_service_none"]["p50_ms"], 0),
                _f(r["load"]["load_s"] + r["load"]["finish_s"], 0),
                _f(r.get("machine_busy_cores"), 2),
            ]
        )
    return head, out


def sla_passes_table(sla: dict[str, Any] | None) -> tuple[list[str], list[list[str]]]:
    head = ["DB", "pass", "due", "fired", "predicted", "cleared", "seconds", "predict s"]
    out: list[list[str]] = []
    if not sla:
        return head, out
    for dialect, r in sla["databases"].items():
        for i, p in enumerate(r["watcher"]["backlog_passes"]):
            out.append(
                [
                    dialect,
                    f"backlog #{i + 1}",
                    _f(p["due"]),
                    _f(p["fired"]),
                    _f(p["predicted"]),
                    _f(p["cleared"]),
                    _f(p["seconds"], 2),
                    _f(p["predict_s"], 2),
                ]
            )
        for i, p in enumerate(r["watcher"]["steady_passes"]):
            out.append(
                [
                    dialect,
                    f"steady #{i + 1}",
                    "0",
                    _f(p["fired"]),
                    _f(p["predicted"]),
                    _f(p["cleared"]),
                    _f(p["seconds"], 2),
                    _f(p["predict_s"], 2),
                ]
            )
    return head, out


def sla_targets(sla: dict[str, Any] | None) -> list[tuple[str, str, bool]]:
    out: list[tuple[str, str, bool]] = []
    if not sla:
        return out
    from sla import AT_RISK_P50_MAX_MS, METRICS_MAX_S, WATCHER_PASS_MAX_S

    for dialect, r in sla["databases"].items():
        p50 = r["http"]["at_risk_first"]["p50_ms"]
        out.append(
            (
                f"GET /v1/sla/at-risk p50 < {AT_RISK_P50_MAX_MS:g} ms ({dialect})",
                f"{p50:.1f} ms",
                p50 < AT_RISK_P50_MAX_MS,
            )
        )
        worst = max(p["seconds"] for p in r["watcher"]["backlog_passes"])
        fired = sum(p["fired"] for p in r["watcher"]["backlog_passes"]) // max(len(r["watcher"]["backlog_passes"]), 1)
        out.append(
            (
                f"watcher pass with a backlog < {WATCHER_PASS_MAX_S:g} s ({dialect}, slowest of "
                f"{len(r['watcher']['backlog_passes'])}, ~{fired:,} fired each)",
                f"{worst:.2f} s",
                worst < WATCHER_PASS_MAX_S,
            )
        )
        steady = max(p["seconds"] for p in r["watcher"]["steady_passes"])
        out.append(
            (
                f"watcher pass, nothing due < {WATCHER_PASS_MAX_S:g} s ({dialect}, slowest)",
                f"{steady:.2f} s",
                steady < WATCHER_PASS_MAX_S,
            )
        )
        for variant in ("none", "technician", "day"):
            ms = r["http"][f"metrics_{variant}"]["p50_ms"]
            label = {"none": "ungrouped", "technician": "group_by=technician", "day": "interval=day"}[variant]
            out.append(
                (
                    f"GET /v1/metrics one month ({r['inprocess']['metrics_jobs']:,} jobs), {label}, p50 < "
                    f"{METRICS_MAX_S:g} s ({dialect})",
                    f"{ms / 1000:.2f} s",
                    ms / 1000 < METRICS_MAX_S,
                )
            )
    return out


def sla_markdown(results: dict[str, Any]) -> str:
    m, s = results["machine"], results["sla"]
    c = s["config"]
    head, body = sla_table(s)
    phead, pbody = sla_passes_table(s)
    parts = [
        SLA_BEGIN,
        "",
        f"Run: **{results['started']}** ({results['mode']} mode), commit {m.get('commit', '?')}; now = {c['now']}, "
        f"{c['jobs']:,} jobs ({c['open']:,} open), {c['technicians']:,} technicians, metrics month "
        f"{c['month'][0]} to {c['month'][1]}, backlog {c['backlog_minutes']:g} min. Machine: {m['cores']} cores, "
        f"{m['memory_gb']} GB, shared; SQLite {m['sqlite']}, PostgreSQL {m.get('postgresql')}.",
        "",
        _md(head, body),
        "",
        "Watcher passes:",
        "",
        _md(phead, pbody),
        "",
        _md(["target", "measured", "result"], [[n, v, "met" if ok else "**MISSED**"] for n, v, ok in sla_targets(s)]),
        "",
        SLA_END,
    ]
    return "\n".join(parts)


def write_sla_docs(results: dict[str, Any], path: Path) -> None:
    block = sla_markdown(results)
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    if SLA_BEGIN.split(" (")[0] in current and SLA_END in current:
        before = current.split(SLA_BEGIN.split(" (")[0], 1)[0]
        after = current.split(SLA_END, 1)[1]
        path.write_text(before + block + after)
        return
    path.write_text(current.rstrip() + "\n\n## SLA (issue 4)\n\n" + block + "\n")


# --------------------------------------------------------------------------- output


def print_tables(console: Console, results: dict[str, Any]) -> None:
    for title, (head, body) in (
        (
            "Selection: nearest available technician (times per query, database included)",
            selection_table(results["selection"]),
        ),
        ("Intake: POST /v1/jobs with auto-dispatch vs a bare FastAPI endpoint", intake_table(results["intake_rows"])),
        ("Parts: POST /v1/jobs/{id}/parts, a different job per request", reservation_table(results.get("parts"))),
        ("Parts: one receipt fills the backorders", backorders_table(results.get("parts"))),
        ("SLA: at-risk queue, watcher and KPIs (issue 4)", sla_table(results.get("sla"))),
        ("SLA: watcher passes", sla_passes_table(results.get("sla"))),
    ):
        if not body:
            continue
        table = Table(title=title, show_lines=False)
        for h in head:
            table.add_column(h, justify="left" if h in _LEFT else "right")
        for row in body:
            table.add_row(*row)
        console.print(table)
    targets = (
        selection_targets(results["selection"])
        + intake_targets(results["intake_rows"])
        + sla_targets(results.get("sla"))
    )
    if targets:
        table = Table(title="Targets")
        table.add_column("target")
        table.add_column("measured", justify="right")
        table.add_column("", justify="center")
        for name, measured, met in targets:
            table.add_row(name, measured, "[green]met[/]" if met else "[red]MISSED[/]")
        console.print(table)
    for r in results["selection"]:
        for d in r.get("disagreements", []) or []:
            console.print(f"[red]disagreement[/] {r['dialect']} {r['layout']} N={r['n']} {r['approach']}: {d}")
    for r in results["intake_rows"]:
        for e in r.get("error_samples", []) or []:
            console.print(f"[red]error[/] {r['server']}: {e}")
    for r in (results.get("parts") or {}).get("reservation", []):
        for e in r.get("error_samples", []) or []:
            console.print(f"[red]error[/] parts {r['dialect']} {r['workload']}: {e}")
    for r in (results.get("parts") or {}).get("backorder_receipts", []):
        if not r["check"].get("ok"):
            console.print(
                f"[red]check failed[/] receipt {r['dialect']} at {r['at']} #{r['rep'] + 1}: "
                f"{r.get('error') or r['check']}"
            )


_LEFT = ("DB", "layout", "server", "workload", "receipt at", "jobs afterwards", "target", "pass")


def _md(head: list[str], body: list[list[str]]) -> str:
    align = ["---" if h in _LEFT else "---:" for h in head]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
    return "\n".join(lines)


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    pk = m["packages"]
    parts = [
        BEGIN,
        "",
        f"Run: **{results['started']}** ({results['mode']} mode, {results['elapsed_s'] / 60:.1f} min), "
        f"commit {m.get('commit', '?')}.",
        "",
        f"Machine: **{m['cores']} cores** ({m['cpu'] or 'unknown CPU'}), {m['memory_gb']} GB RAM, shared and noisy; "
        f"{m['os']}. Python {m['python']}, SQLite {m['sqlite']}, PostgreSQL {m.get('postgresql')} "
        f"(same machine, default configuration); SQLAlchemy {pk['sqlalchemy']}, FastAPI {pk['fastapi']}, "
        f"uvicorn {pk['uvicorn']} (no uvloop/httptools), pydantic {pk['pydantic']}, geopy {pk['geopy']}, "
        f"psycopg {pk['psycopg']}.",
        "",
    ]
    if results["selection"]:
        head, body = selection_table(results["selection"])
        parts += [
            f"### Selection ({results['queries']} queries per data set)",
            "",
            _md(head, body),
            "",
        ]
    if results["intake_rows"]:
        it = results["intake"]
        head, body = intake_table(results["intake_rows"])
        parts += [
            f"### Intake ({it['clients']} concurrent clients, {it['seconds']:g} s measured per server after a "
            f"warm-up, {it['technicians']:,} technicians)",
            "",
            _md(head, body),
            "",
        ]
    pr = results.get("parts")
    if pr:
        c = pr["config"]
        head, body = reservation_table(pr)
        parts += [
            f"### Parts: reservations ({c['clients']} concurrent clients, {c['seconds']:g} s measured per workload "
            f"after a {c['warmup']:g} s warm-up, a different job per request)",
            "",
            _md(head, body),
            "",
        ]
        head, body = backorders_table(pr)
        parts += [
            f"### Parts: one receipt fills {c['backorders']:,} backorders ({c['receipts']} receipt(s) per row, "
            "each on fresh jobs and a fresh SKU)",
            "",
            _md(head, body),
            "",
        ]
    targets = selection_targets(results["selection"]) + intake_targets(results["intake_rows"])
    if targets:
        parts += [
            "### Targets",
            "",
            _md(["target", "measured", "result"], [[n, v, "met" if ok else "**MISSED**"] for n, v, ok in targets]),
            "",
        ]
    parts.append(END)
    return "\n".join(parts)


def write_docs(results: dict[str, Any], path: Path) -> None:
    block = markdown(results)
    if path.exists():
        current = path.read_text()
        if BEGIN in current and END in current:
            before = current.split(BEGIN, 1)[0]
            after = current.split(END, 1)[1]
            path.write_text(before + block + after)
            return
        path.write_text(current.rstrip() + "\n\n" + block + "\n")
        return
    path.write_text("# Benchmarks\n\n" + block + "\n")
