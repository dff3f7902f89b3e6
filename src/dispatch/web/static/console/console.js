// Dispatcher console: sign in with a key, a board sorted by urgency, a job's page with its
// actions, at-risk / breaches / parts panels and KPIs. Polls every few seconds; no build step.
import {
  Api, NetworkError, OPEN_STATUSES, SLA_LABELS, STATUS_LABELS, duration, h, keepingFocus, morph, morphChildren, problemText, when,
} from "/ui/common/api.js";

const KEY_STORE = "dispatch.console.key";
const POLL_MS = 5000;
const main = document.getElementById("main");
const statusLine = document.getElementById("status-line");

let api = null;
let technicians = new Map(); // id -> technician (staff keys only)
let pollTimer = null;
let tickTimer = null;
let viewToken = 0; // bumps on every navigation so stale refreshes do not paint over a new view
const optional = {}; // endpoint name -> false once the server answered 404 (the feature is absent)

// ---------------------------------------------------------------------------------------------
// Sign-in and routing

function signedIn() {
  const key = sessionStorage.getItem(KEY_STORE);
  if (!key) return false;
  api = new Api(key);
  return true;
}

function showSignIn(message) {
  stopTimers();
  document.getElementById("nav").classList.add("hidden");
  document.getElementById("signout").classList.add("hidden");
  statusLine.textContent = "";
  const error = h("p", { class: message ? "error" : "hidden", id: "signin-error", role: "alert" }, message || "");
  const input = h("input", {
    id: "key", name: "key", type: "password", autocomplete: "current-password", required: true,
    "aria-describedby": "key-help",
  });
  const form = h("form", { onsubmit: async (e) => {
    e.preventDefault();
    const key = input.value.trim();
    const probe = await new Api(key).get("/v1/jobs?limit=1").catch(() => null);
    if (!probe) { error.textContent = "The service cannot be reached."; error.className = "error"; return; }
    if (!probe.ok) {
      error.textContent = probe.status === 401 ? "That key was not accepted." : problemText(probe);
      error.className = "error";
      input.focus();
      return;
    }
    sessionStorage.setItem(KEY_STORE, key);
    signedIn();
    await loadTechnicians();
    route();
  } },
  h("label", { for: "key" }, "API key"),
  input,
  h("p", { id: "key-help", class: "muted" }, "A dispatcher or supervisor key. It is kept for this tab only."),
  error,
  h("button", { type: "submit" }, "Sign in"));
  main.replaceChildren(h("section", { class: "signin", "aria-labelledby": "signin-title" },
    h("h2", { id: "signin-title" }, "Sign in"), form));
  input.focus();
}

document.getElementById("signout").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_STORE);
  api = null;
  location.hash = "#/board";
  showSignIn();
});

function stopTimers() {
  clearInterval(pollTimer); clearInterval(tickTimer);
  pollTimer = tickTimer = null;
}

function every(ms, fn) {
  const token = viewToken;
  pollTimer = setInterval(() => { if (token === viewToken) fn(); }, ms);
}

async function route() {
  viewToken += 1;
  stopTimers();
  if (!signedIn()) return showSignIn();
  document.getElementById("nav").classList.remove("hidden");
  document.getElementById("signout").classList.remove("hidden");
  const path = location.hash.replace(/^#/, "") || "/board";
  const job = path.match(/^\/jobs\/(\d+)$/);
  const section = job ? "board" : path.slice(1);
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === section) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  if (job) return showJob(Number(job[1]));
  if (path === "/kpi") return showKpis();
  return showBoard();
}

window.addEventListener("hashchange", route);

async function call(method, path, body) {
  try {
    const answer = await api.request(method, path, { body });
    if (answer.status === 401) { sessionStorage.removeItem(KEY_STORE); showSignIn("Your key is no longer accepted."); }
    return answer;
  } catch (err) {
    if (err instanceof NetworkError) { live("Connection lost — retrying"); return { status: 0, ok: false, data: null }; }
    throw err;
  }
}

function live(text) {
  if (text) statusLine.textContent = text;
}

function updated() {
  statusLine.textContent = `Updated ${new Date().toLocaleTimeString()}`;
}

async function loadTechnicians() {
  const found = new Map();
  let cursor = null;
  for (let page = 0; page < 10; page++) {
    const answer = await call("GET", `/v1/technicians?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    if (!answer.ok) break;
    for (const t of answer.data.items) found.set(t.id, t);
    cursor = answer.data.next_cursor;
    if (!cursor) break;
  }
  technicians = found;
}

function techName(id) {
  if (id == null) return "—";
  const t = technicians.get(id);
  return t ? t.name : `#${id}`;
}

// How old a technician's position is: "nearest" is only as good as the last fix. A display hint
// from the browser's clock (the deadlines, which matter, come from the server's).
const STALE_POSITION_MINUTES = 30;

function positionAge(iso) {
  if (!iso) return "position unknown";
  const minutes = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 60000));
  const age = minutes < 1 ? "just now" : minutes < 90 ? `${minutes} min ago` : minutes < 48 * 60 ? `${Math.round(minutes / 60)} h ago` : `${Math.round(minutes / 1440)} days ago`;
  return `position ${age}`;
}

function positionNote(iso) {
  const stale = !iso || Date.now() - Date.parse(iso) > STALE_POSITION_MINUTES * 60000;
  return h("span", { class: stale ? "position stale" : "position" }, positionAge(iso));
}

function slaBadge(sla) {
  return h("span", { class: `badge sla-${sla.state}` }, SLA_LABELS[sla.state] || sla.state);
}

// Countdowns tick every second from the server's own time_left_seconds at the last fetch, so a
// wrong clock on the dispatcher's computer cannot move a deadline.
function countdownCell(job, fetchedAt, tag = "td") {
  const td = h(tag, { class: "countdown", dataset: { left: job.sla.time_left_seconds, fetched: fetchedAt } });
  paintCountdown(td);
  return td;
}

function paintCountdown(td) {
  const left = Number(td.dataset.left) - (performance.now() - Number(td.dataset.fetched)) / 1000;
  td.textContent = duration(left);
  td.classList.toggle("late", left < 0);
}

function startTicking() {
  clearInterval(tickTimer);
  tickTimer = setInterval(() => document.querySelectorAll(".countdown").forEach(paintCountdown), 1000);
}

// ---------------------------------------------------------------------------------------------
// The board

const filters = { status: "", branch: "", technician: "", category: "", q: "" };

// The board in the order a dispatcher works (breached, emergencies, then the deadline each
// countdown shows: `order=urgency`), and the jobs that wait for a person in a queue of their own.
function boardQuery(needsAttention) {
  const p = new URLSearchParams();
  for (const s of filters.status ? [filters.status] : OPEN_STATUSES) p.append("status", s);
  if (filters.branch) p.set("branch", filters.branch);
  if (filters.technician) p.set("technician_id", filters.technician);
  if (filters.category) p.set("category", filters.category);
  if (filters.q) p.set("q", filters.q);
  p.set("order", "urgency");
  p.set("needs_attention", needsAttention ? "true" : "false");
  p.set("limit", needsAttention ? "100" : "200");
  return `/v1/jobs?${p}`;
}

const ATTENTION_LABELS = {
  no_location: "No location: place the address",
  no_skilled_technician: "Nobody has the skill",
  gave_back: "Given back by the technician",
  dispatch_failed: "Automatic dispatch found nobody",
};
const PRIORITY_LABELS = { emergency: "Emergency", high: "High", normal: "Normal", low: "Low" };

function priorityCell(job) {
  return h("td", {},
    h("span", { class: `priority priority-${job.priority}` }, PRIORITY_LABELS[job.priority] || job.priority),
    job.service_tier !== "standard" ? h("div", { class: "muted" }, job.service_tier) : null);
}

function select(id, label, options, value) {
  return h("div", {},
    h("label", { for: id }, label),
    h("select", { id, name: id },
      options.map(([v, text]) => h("option", { value: v, selected: v === value }, text))));
}

async function showBoard() {
  const token = viewToken;
  const branches = [...new Set([...technicians.values()].map((t) => t.home_branch).filter(Boolean))].sort();
  const categories = [...new Set([...technicians.values()].flatMap((t) => t.skills))].sort();
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter jobs", onsubmit: (e) => {
    e.preventDefault();
    refreshBoard(token);
  } },
  select("f-status", "Status", [["", "All open"], ...OPEN_STATUSES.map((s) => [s, STATUS_LABELS[s]])], filters.status),
  select("f-branch", "Branch", [["", "All branches"], ...branches.map((b) => [b, b])], filters.branch),
  select("f-technician", "Technician", [["", "Anyone"],
    ...[...technicians.values()].sort((a, b) => a.name.localeCompare(b.name)).map((t) => [String(t.id), t.name])],
  filters.technician),
  select("f-category", "Category", [["", "All categories"], ...categories.map((c) => [c, c])], filters.category),
  h("div", {}, h("label", { for: "f-q" }, "Customer phone or order no."),
    h("input", { id: "f-q", name: "q", type: "search", value: filters.q, placeholder: "e.g. 555 01 00" })),
  h("button", { type: "submit" }, "Search"));
  form.addEventListener("change", () => refreshBoard(token));

  const table = h("table", { id: "board", "aria-describedby": "board-title" },
    h("caption", { class: "visually-hidden" }, "Open jobs, most urgent first"),
    h("thead", {}, h("tr", {},
      ["Time left", "SLA", "Priority", "Job", "Customer", "Product", "Status", "Technician"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}));
  const queue = h("table", { id: "attention", "aria-describedby": "attention-title" },
    h("caption", { class: "visually-hidden" }, "Jobs that need a person, most urgent first"),
    h("thead", {}, h("tr", {},
      ["Why", "Time left", "Priority", "Job", "Customer", "Product", "Status"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}));
  main.replaceChildren(h("div", { class: "layout board-layout" },
    h("section", { class: "board", "aria-labelledby": "board-title" },
      form,
      h("section", { id: "attention-queue", class: "queue hidden", "aria-labelledby": "attention-title" },
        h("h2", { id: "attention-title" }, "Needs a person ", h("span", { class: "count", id: "attention-count" })),
        h("div", { class: "scroll" }, queue)),
      h("h2", { id: "board-title" }, "Open jobs ", h("span", { class: "count", id: "board-count" })),
      h("div", { class: "scroll" }, table)),
    h("aside", { "aria-label": "Attention" },
      h("section", { class: "panel", id: "at-risk-panel", "aria-labelledby": "at-risk-title" },
        h("h2", { id: "at-risk-title" }, "At risk and breached"), h("ul", {})),
      h("section", { class: "panel", id: "breaches-panel", "aria-labelledby": "breaches-title" },
        h("h2", { id: "breaches-title" }, "Breaches today"), h("ul", {})),
      h("section", { class: "panel", id: "parts-panel", "aria-labelledby": "parts-title" },
        h("h2", { id: "parts-title" }, "Waiting for parts"), h("ul", {})),
      h("section", { class: optional.callList === false ? "panel hidden" : "panel", id: "call-panel", "aria-labelledby": "call-title" },
        h("h2", { id: "call-title" }, "Customers to call back"), h("ul", {})))));
  await refreshBoard(token);
  every(POLL_MS, () => refreshBoard(token));
  startTicking();
}

function readFilters() {
  const v = (id) => (document.getElementById(id) || { value: "" }).value.trim();
  filters.status = v("f-status"); filters.branch = v("f-branch"); filters.technician = v("f-technician");
  filters.category = v("f-category"); filters.q = v("f-q");
}

function jobCells(job) {
  return [
    h("td", {}, h("a", { href: `#/jobs/${job.id}` }, `#${job.id}`), job.external_ref ? h("div", { class: "muted" }, job.external_ref) : null),
    h("td", {}, job.customer.name, h("div", { class: "muted" }, job.customer.phone || "")),
    h("td", {}, job.product.category, h("div", { class: "muted" }, job.fault.slice(0, 60))),
    h("td", {}, STATUS_LABELS[job.status] || job.status),
  ];
}

function boardRow(job, fetched) {
  return h("tr", { class: `sla-row-${job.sla.state}`, dataset: { key: `job-${job.id}`, jobId: job.id } },
    countdownCell(job, fetched),
    h("td", {}, slaBadge(job.sla), job.sla.predicted_breach ? h("div", { class: "muted" }, "breach predicted") : null),
    priorityCell(job), ...jobCells(job),
    h("td", {}, techName(job.technician_id)));
}

function attentionRow(job, fetched) {
  return h("tr", { class: "attention-row", dataset: { key: `job-${job.id}`, jobId: job.id } },
    h("td", {}, h("strong", {}, ATTENTION_LABELS[job.attention] || job.attention)),
    countdownCell(job, fetched), priorityCell(job), ...jobCells(job));
}

// Rows are updated in place (matched by job), never rebuilt, so a poll keeps the dispatcher's
// keyboard focus and place.
function fillRows(tbody, rows, columns, empty) {
  morphChildren(tbody, rows.length ? rows : [h("tr", { dataset: { key: "empty" } }, h("td", { colspan: columns, class: "muted" }, empty))]);
}

async function refreshBoard(token) {
  readFilters();
  const [answer, waiting] = await Promise.all([call("GET", boardQuery(false)), call("GET", boardQuery(true))]);
  if (token !== viewToken) return;
  const tbody = document.querySelector("#board tbody");
  if (!answer.ok) {
    if (answer.status) tbody.replaceChildren(h("tr", {}, h("td", { colspan: 8, class: "error" }, problemText(answer))));
    return;
  }
  const fetched = performance.now();
  keepingFocus(() => {
    fillRows(tbody, answer.data.items.map((job) => boardRow(job, fetched)), 8, "No open jobs match.");
    document.getElementById("board-count").textContent = `(${answer.data.items.length}${answer.data.next_cursor ? "+" : ""})`;
    const items = waiting.ok ? waiting.data.items : [];
    document.getElementById("attention-queue").classList.toggle("hidden", !items.length);
    fillRows(document.querySelector("#attention tbody"), items.map((job) => attentionRow(job, fetched)), 7, "");
    document.getElementById("attention-count").textContent = `(${items.length}${waiting.data?.next_cursor ? "+" : ""})`;
  });
  await refreshPanels(token);
  updated();
}

function jobLine(job, extra) {
  return h("li", { dataset: { key: `job-${job.id}` } }, h("a", { href: `#/jobs/${job.id}` }, `#${job.id} ${job.customer.name}`), " ",
    slaBadge(job.sla), h("div", { class: "muted" }, extra));
}

async function listJobs(query) {
  const answer = await call("GET", `/v1/jobs?${query}&limit=50`);
  return answer.ok ? answer.data.items : [];
}

// An item of GET /v1/sla/at-risk, in the shape the panels draw (a job's).
function fromAtRisk(item) {
  if (item.customer) return item;
  return {
    id: item.job_id, status: item.status, technician_id: item.technician_id, due_at: item.due_at,
    customer: { name: item.customer_name, address: item.customer_address },
    sla: { state: item.state, time_left_seconds: item.time_left_seconds, reasons: item.reasons },
  };
}

async function atRiskJobs() {
  if (optional.atRisk !== false) {
    const answer = await call("GET", "/v1/sla/at-risk?limit=50");
    if (answer.ok) return (answer.data.items || []).map(fromAtRisk);
    if (answer.status === 404 || answer.status === 405) optional.atRisk = false;
  }
  // Not on this server yet: the same list from the jobs' own SLA states.
  const [breached, atRisk] = await Promise.all([listJobs("sla_state=breached"), listJobs("sla_state=at_risk")]);
  return [...breached, ...atRisk];
}

async function refreshPanels(token) {
  const startOfDay = new Date(); startOfDay.setHours(0, 0, 0, 0);
  const [risky, breached, missed, waiting, calls, everyone] = await Promise.all([
    atRiskJobs(), listJobs("sla_state=breached"), listJobs("sla_state=missed&order=-due_at"), listJobs("status=waiting_parts"),
    optionalList("callList", "/v1/callbacks/due?limit=20"),
    // Unanswered calls whose retry time is still ahead: listed with when, never silently dropped.
    optionalList("callListLater", "/v1/callbacks/due?limit=40&include_later=true"),
  ]);
  if (token !== viewToken) return;
  const fill = (id, items, empty) => {
    const ul = document.querySelector(`#${id} ul`);
    if (ul) keepingFocus(() => morphChildren(ul, items.length ? items : [h("li", { class: "muted", dataset: { key: "empty" } }, empty)]));
  };
  fill("at-risk-panel", risky.map((j) => jobLine(j,
    `${j.sla.time_left_seconds < 0 ? "late by" : "left"} ${duration(Math.abs(j.sla.time_left_seconds))} · ${STATUS_LABELS[j.status] || j.status}`)),
  "Nothing at risk.");
  const today = [...breached, ...missed].filter((j) => new Date(j.due_at) >= startOfDay);
  fill("breaches-panel", today.map((j) => jobLine(j, `due ${when(j.due_at)} · ${j.technician_id == null ? "unassigned" : techName(j.technician_id)}`)), "No breaches today.");
  fill("parts-panel", waiting.map((j) => jobLine(j,
    (j.waiting_for_parts || []).map((p) => `${p.quantity}× ${p.sku} ${p.state === "in_transit" ? "on its way" : "backordered"}${p.eta ? ", ETA " + when(p.eta) : ""}`).join("; ") ||
    (j.parts_eta ? `ETA ${when(j.parts_eta)}` : "no ETA"))),
  "No job is waiting for parts.");
  document.getElementById("call-panel")?.classList.toggle("hidden", !calls);
  if (calls) {
    const due = new Set(calls.map((c) => c.job_id));
    const later = (everyone || []).filter((c) => !due.has(c.job_id));
    const line = (c, isLater) => h("li", { dataset: { key: `call-${c.job_id}` }, class: isLater ? "later" : null },
      h("a", { href: `#/jobs/${c.job_id}` }, `#${c.job_id} ${c.customer_name}`), " ",
      c.customer_phone ? h("a", { href: `tel:${c.customer_phone.replace(/[^+\d]/g, "")}` }, c.customer_phone) : null,
      h("div", { class: "muted" }, isLater
        ? `not reached (${c.unreached_attempts}×) · call again after ${when(c.retry_after)}`
        : `completed ${when(c.completed_at)}${c.unreached_attempts ? ` · ${c.unreached_attempts} unanswered` : ""}`));
    fill("call-panel", [...calls.map((c) => line(c, false)), ...later.map((c) => line(c, true))], "Nobody to call right now.");
  }
}

// ---------------------------------------------------------------------------------------------
// A job's page

async function optionalList(name, path) {
  if (optional[name] === false) return null;
  const answer = await call("GET", path);
  if (answer.ok) return answer.data.items || answer.data;
  if ([404, 405].includes(answer.status) && !answer.data?.code?.startsWith("job-")) optional[name] = false;
  return null;
}

function section(id, title, ...body) {
  return h("section", { class: "panel", id, "aria-labelledby": `${id}-title` }, h("h3", { id: `${id}-title` }, title), ...body);
}

function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(([, v]) => v !== undefined).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]));
}

function warranty(product, reportedAt) {
  if (!product.purchased_on) return "unknown (no purchase date)";
  const bought = new Date(product.purchased_on);
  const ends = new Date(bought); ends.setFullYear(ends.getFullYear() + 2);
  return new Date(reportedAt) <= ends ? `in warranty (2 years, until ${ends.toLocaleDateString()})` : `out of warranty since ${ends.toLocaleDateString()}`;
}

function describeEvent(e) {
  const d = e.data || {};
  const parts = [];
  if (d.from || d.to) parts.push(`${STATUS_LABELS[d.from] || d.from || "?"} → ${STATUS_LABELS[d.to] || d.to || "?"}`);
  if (d.technician_id) parts.push(`technician ${techName(d.technician_id)}`);
  if (d.distance_km != null) parts.push(`${Number(d.distance_km).toFixed(1)} km`);
  if (d.reason) parts.push(`reason: ${d.reason}`);
  if (d.sku) parts.push(`${d.quantity || ""}× ${d.sku}`);
  if (d.note) parts.push(`“${d.note}”`);
  return parts.join(" · ");
}

async function showJob(id) {
  const token = viewToken;
  main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  const info = h("div", { id: "job-info", class: "job-grid" });
  const first = await renderJobInfo(id, info, token);
  if (!first || token !== viewToken) return;
  const actions = renderActions(id, first, token);
  main.replaceChildren(
    h("p", {}, h("a", { href: "#/board" }, "← Board")),
    h("h2", { id: "job-title" }, `Job #${id} · ${first.customer.name}`),
    h("div", { class: "layout" }, info, actions));
  document.getElementById("job-title").focus?.();
  every(POLL_MS, () => renderJobInfo(id, info, token));
  startTicking();
}

function arrivalText(arrival) {
  if (!arrival) return undefined;
  const who = arrival.technician_first_name;
  if (arrival.basis === "appointment") return `${who}, ${when(arrival.window_start)} – ${when(arrival.window_end)} (the agreed appointment)`;
  if (Date.parse(arrival.window_end) <= Date.parse(arrival.window_start)) return `${who}, as soon as possible (the deadline has passed)`;
  return `${who}, by ${when(arrival.window_end)} (the deadline)`;
}

async function renderJobInfo(id, info, token) {
  const answer = await call("GET", `/v1/jobs/${id}`);
  if (token !== viewToken) return null;
  if (!answer.ok) {
    if (answer.status) main.replaceChildren(h("p", { class: "error", role: "alert" }, problemText(answer)), h("a", { href: "#/board" }, "Back to the board"));
    return null;
  }
  const job = answer.data;
  const [events, parts, visits, photos, callbacks] = await Promise.all([
    call("GET", `/v1/jobs/${id}/events?limit=200`).then((a) => (a.ok ? a.data.items : [])),
    call("GET", `/v1/jobs/${id}/parts?limit=200`).then((a) => (a.ok ? a.data.items : [])),
    optionalList("visits", `/v1/jobs/${id}/visits`),
    optionalList("photos", `/v1/jobs/${id}/photos`),
    optionalList("callbacks", `/v1/jobs/${id}/callbacks`),
  ]);
  if (token !== viewToken) return null;
  const fetched = performance.now();
  const countdown = countdownCell(job, fetched, "span");
  const c = job.customer; const p = job.product;
  // Sections are updated in place (see morph), so a poll keeps focus on a link or a thumbnail.
  const sections = [
    section("job-summary", "Job",
      facts([
        ["Status", STATUS_LABELS[job.status] || job.status],
        ["SLA", h("span", {}, slaBadge(job.sla), job.sla.predicted_breach ? ` (predicted: ${job.sla.predicted_breach})` : "")],
        ["Due", when(job.due_at)],
        OPEN_STATUSES.includes(job.status) ? ["Time left", countdown]
          : ["Finished", job.completed_at ? `completed ${when(job.completed_at)}` : when(job.cancelled_at)],
        ["Needs a person", job.attention ? ATTENTION_LABELS[job.attention] || job.attention : undefined],
        ["Technician", job.technician_id == null ? "—"
          : h("span", {}, techName(job.technician_id), " · ", positionNote(technicians.get(job.technician_id)?.location_at))],
        ["Arrival", arrivalText(job.arrival)],
        ["Priority", `${PRIORITY_LABELS[job.priority] || job.priority} · ${job.service_tier}`],
        ["Fault", job.fault],
        ["Order no.", job.external_ref],
      ])),
    section("job-customer", "Customer",
      facts([
        ["Name", c.name],
        ["Phone", c.phone ? h("a", { href: `tel:${c.phone.replace(/[^+\d]/g, "")}` }, c.phone) : "—"],
        ["Address", c.address],
        ["Position", c.lat != null ? `${c.lat.toFixed(5)}, ${c.lon.toFixed(5)}` : "not placed yet"],
      ])),
    section("job-product", "Product and warranty",
      facts([
        ["Category", p.category], ["Model", p.model], ["Serial", p.serial], ["Batch", p.batch],
        ["Purchased", p.purchased_on], ["Warranty", warranty(p, job.reported_at)],
      ])),
    section("job-parts", "Parts and ETAs",
      parts.length ? h("ul", {}, parts.map((l) => h("li", {},
        `${l.quantity}× ${l.sku} — ${l.state}${l.location ? " at " + l.location : ""}${l.eta ? " · ETA " + when(l.eta) : ""}`)))
        : h("p", { class: "muted" }, "No parts requested.")),
    visits ? section("job-visits", "Visits", visits.length ? h("ul", {}, visits.map((v) => h("li", {},
      [`Visit ${v.number ?? v.id}`, v.return_visit ? "return visit" : null, (v.reason || "").replaceAll("_", " "),
        v.outcome ? v.outcome.replaceAll("_", " ") : "in progress", v.technician_id ? techName(v.technician_id) : null,
        v.on_site_at ? `on site ${when(v.on_site_at)}` : null].filter(Boolean).join(" · "))))
      : h("p", { class: "muted" }, "No visits yet.")) : null,
    photos ? section("job-photos", "Photos", photos.length ? h("div", { class: "thumbs" }, photos.map(photoThumb)) : h("p", { class: "muted" }, "No photos yet.")) : null,
    callbacks ? section("job-callbacks", "Callbacks", callbacks.length ? h("ul", {}, callbacks.map((cb) => h("li", {},
      `${when(cb.called_at || cb.created_at || cb.recorded_at)} · ${cb.reached ? "reached" : "not reached"}${cb.reached ? (cb.fixed ? " · fixed" : " · not fixed") : ""}${cb.satisfaction ? " · " + cb.satisfaction + "/5" : ""}${!cb.reached && cb.retry_after ? " · call again after " + when(cb.retry_after) : ""}${cb.note ? " · " + cb.note : ""}`)))
      : h("p", { class: "muted" }, "No callbacks yet.")) : null,
    section("job-timeline", "Timeline",
      h("ol", { class: "timeline", reversed: true }, [...events].reverse().map((e) => h("li", {},
        h("time", { datetime: e.occurred_at, title: `recorded ${when(e.recorded_at)}` }, when(e.occurred_at)),
        h("span", {}, h("strong", {}, e.type.replaceAll("_", " ")), ` by ${e.actor}`, h("div", { class: "muted" }, describeEvent(e))))))),
  ].filter(Boolean);
  for (const el of sections) el.dataset.key = el.id;
  keepingFocus(() => morphChildren(info, sections));
  enableActions(job);
  updated();
  return job;
}

// The lifecycle's rules (jobs/lifecycle.py): which actions make sense in this status. The server
// still decides; this only saves a dispatcher a click that would be refused.
const DISPATCHABLE = ["new", "unable", "ready"];
const PASSED_OVER = {
  gave_back: "gave this job back", further: "further away", taken: "taken by another dispatch",
  at_capacity: "at capacity", off_duty: "off duty", off_shift: "off shift", inactive: "blocked",
};
const REASSIGNABLE = [...DISPATCHABLE, "assigned"];
const REOPENABLE = ["completed", "closed"];

function enableActions(job) {
  const set = (id, on) => { const b = document.querySelector(`#${id} button[type=submit]`); if (b) b.disabled = !on; };
  set("dispatch-form", DISPATCHABLE.includes(job.status));
  set("assign-form", REASSIGNABLE.includes(job.status));
  set("return-visit-form", REOPENABLE.includes(job.status));
  // A callback is made once the job is completed (and before it closes): offered only then.
  const callable = job.status === "completed";
  const fields = document.getElementById("cb-fields");
  if (fields) fields.disabled = !callable;
  document.getElementById("cb-when")?.classList.toggle("hidden", callable);
}

const thumbnails = new Map(); // photo id -> blob: URL, fetched once (polls repaint the same picture)

function photoThumb(photo) {
  const img = h("img", { alt: `Photo ${photo.id}${photo.taken_at ? " taken " + when(photo.taken_at) : ""}`, loading: "lazy",
    src: thumbnails.get(photo.id), dataset: { photo: photo.id } });
  if (!thumbnails.has(photo.id)) {
    thumbnails.set(photo.id, undefined);
    const url = photo.thumbnail_url || photo.url || `/v1/jobs/${photo.job_id}/photos/${photo.id}/thumbnail`;
    // The image needs the key, which an <img src> cannot send: fetch it and show a blob.
    fetch(url, { headers: { Authorization: `Bearer ${api.key}` } })
      .then((r) => (r.ok ? r.blob() : null))
      .then((blob) => {
        if (!blob) { thumbnails.delete(photo.id); return; }
        thumbnails.set(photo.id, URL.createObjectURL(blob));
        document.querySelectorAll(`img[data-photo="${photo.id}"]`).forEach((el) => { el.src = thumbnails.get(photo.id); });
      })
      .catch(() => thumbnails.delete(photo.id));
  }
  return h("figure", { dataset: { key: `photo-${photo.id}` } }, img, h("figcaption", { class: "muted" }, photo.verdict || photo.sha256?.slice(0, 8) || ""));
}

function haversineKm(a, b) {
  const rad = (x) => (x * Math.PI) / 180;
  const dLat = rad(b.lat - a.lat); const dLon = rad(b.lon - a.lon);
  const s = Math.sin(dLat / 2) ** 2 + Math.cos(rad(a.lat)) * Math.cos(rad(b.lat)) * Math.sin(dLon / 2) ** 2;
  return 6371 * 2 * Math.asin(Math.sqrt(s));
}

function result(id) {
  return h("div", { id, class: "result", role: "status", "aria-live": "polite" });
}

function say(el, text, isError) {
  el.replaceChildren(h("p", { class: isError ? "error" : "notice" }, text));
}

function renderActions(id, job, token) {
  const refresh = () => renderJobInfo(id, document.getElementById("job-info"), token);

  // Dispatch to the nearest: the answer names who went and who else was considered.
  const dispatchOut = result("dispatch-result");
  const dispatchForm = h("form", { id: "dispatch-form", onsubmit: async (e) => {
    e.preventDefault();
    const answer = await call("POST", `/v1/jobs/${id}/dispatch`);
    if (!answer.ok) { say(dispatchOut, problemText(answer), true); return; }
    const r = answer.data;
    dispatchOut.replaceChildren(
      h("p", { class: "notice", id: "dispatch-chosen" },
        `Sent ${r.candidates.find((x) => x.technician_id === r.technician_id)?.name || techName(r.technician_id)}, ${r.distance_km.toFixed(1)} km away.`),
      h("table", { id: "candidates" },
        h("caption", {}, "Candidates considered"),
        h("thead", {}, h("tr", {}, ["Technician", "Distance", "Position", "Outcome"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, r.candidates.map((c) => h("tr", {},
          h("td", {}, c.name), h("td", {}, `${c.distance_km.toFixed(1)} km`), h("td", {}, positionNote(c.location_at)),
          h("td", {}, c.technician_id === r.technician_id ? "chosen" : PASSED_OVER[c.passed_over] || c.passed_over || "available"))))));
    await loadTechnicians();
    refresh();
  } },
  h("h3", {}, "Dispatch to the nearest"),
  h("p", { class: "muted" }, "Sends the nearest available technician with the skill, and shows who else was considered."),
  h("div", { class: "row" }, h("button", { type: "submit", id: "dispatch-nearest" }, "Dispatch nearest")),
  dispatchOut);

  // Assign by hand: technicians with the skill first, nearest first.
  const skilled = [...technicians.values()]
    .map((t) => ({ t, km: job.customer.lat != null ? haversineKm(job.customer, t) : null, fits: t.skills.includes(job.product.category) }))
    .sort((a, b) => (b.fits - a.fits) || ((a.km ?? 0) - (b.km ?? 0)));
  const assignOut = result("assign-result");
  const techSelect = h("select", { id: "assign-technician", required: true },
    h("option", { value: "" }, "Choose…"),
    skilled.map(({ t, km, fits }) => h("option", { value: t.id },
      `${t.name}${km != null ? ` — ${km.toFixed(1)} km` : ""}${fits ? "" : " (no skill)"}${t.available_now ? "" : " (busy/off)"} · ${t.open_jobs}/${t.capacity} · ${positionAge(t.location_at)}`)));
  const reason = h("input", { id: "assign-reason", required: true, maxlength: 500 });
  const assignForm = h("form", { id: "assign-form", onsubmit: async (e) => {
    e.preventDefault();
    const answer = await call("POST", `/v1/jobs/${id}/assign`, { technician_id: Number(techSelect.value), reason: reason.value });
    if (!answer.ok) { say(assignOut, problemText(answer), true); return; }
    say(assignOut, `Assigned to ${techName(answer.data.technician_id)}.`);
    await loadTechnicians();
    refresh();
  } },
  h("h3", {}, "Assign by hand"),
  h("label", { for: "assign-technician" }, "Technician"), techSelect,
  h("label", { for: "assign-reason" }, "Reason"), reason,
  h("div", { class: "row" }, h("button", { type: "submit" }, "Assign")), assignOut);

  // Return visit (issue: visits); a 404 says the server does not have it yet.
  const rvOut = result("return-visit-result");
  const rvReason = h("select", { id: "rv-reason", required: true },
    [["callback_not_fixed", "Callback: not fixed"], ["compliance_failed", "Compliance review failed"],
      ["fault_returned", "The fault came back"], ["customer_request", "The customer asked"], ["other", "Other"]]
      .map(([v, t]) => h("option", { value: v }, t)));
  const rvNote = h("input", { id: "rv-note", maxlength: 2000 });
  const returnForm = h("form", { id: "return-visit-form", onsubmit: async (e) => {
    e.preventDefault();
    const answer = await call("POST", `/v1/jobs/${id}/return-visits`, rvNote.value.trim() ? { reason: rvReason.value, note: rvNote.value.trim() } : { reason: rvReason.value });
    if (answer.status === 404 && !answer.data?.code?.startsWith("job")) { say(rvOut, "Return visits are not available on this server yet.", true); return; }
    if (!answer.ok) { say(rvOut, problemText(answer), true); return; }
    say(rvOut, "Return visit requested; the job is open again.");
    refresh();
  } },
  h("h3", {}, "Request a return visit"),
  h("label", { for: "rv-reason" }, "Reason"), rvReason,
  h("label", { for: "rv-note" }, "Note"), rvNote,
  h("div", { class: "row" }, h("button", { type: "submit" }, "Request return visit")), rvOut);

  // Callback: reached? fixed? satisfied 1-5?
  const cbOut = result("callback-result");
  const fixed = h("input", { id: "cb-fixed", type: "checkbox", checked: true });
  const score = h("select", { id: "cb-score" }, h("option", { value: "" }, "—"), [5, 4, 3, 2, 1].map((n) => h("option", { value: n }, `${n}`)));
  // Nobody answered: there is nobody to say whether it is fixed or how satisfied they are.
  const reached = h("input", { id: "cb-reached", type: "checkbox", checked: true, onchange: () => {
    fixed.disabled = score.disabled = !reached.checked;
    fixed.checked = reached.checked;
    if (!reached.checked) score.value = "";
  } });
  const cbNote = h("input", { id: "cb-note", maxlength: 2000 });
  const callbackForm = h("form", { id: "callback-form", onsubmit: async (e) => {
    e.preventDefault();
    const body = { reached: reached.checked, fixed: reached.checked ? fixed.checked : null,
      satisfaction: reached.checked && score.value ? Number(score.value) : null, note: cbNote.value || null };
    for (const k of Object.keys(body)) if (body[k] === null) delete body[k];
    const answer = await call("POST", `/v1/jobs/${id}/callbacks`, body);
    if (answer.status === 404 && !answer.data?.code?.startsWith("job")) { say(cbOut, "Callbacks are not available on this server yet.", true); return; }
    if (!answer.ok) { say(cbOut, problemText(answer), true); return; }
    say(cbOut, answer.data.reached ? "Callback recorded."
      : `Not reached: callback recorded. Call again after ${when(answer.data.retry_after)}; the call list keeps the customer until then.`);
    refresh();
  } },
  h("h3", {}, "Record a callback"),
  h("p", { id: "cb-when", class: "muted hidden" }, "Customers are called back once the job is completed."),
  h("fieldset", { id: "cb-fields", class: "plain" },
    h("legend", { class: "visually-hidden" }, "Callback"),
    h("div", { class: "row" }, reached, h("label", { for: "cb-reached" }, "Customer reached")),
    h("div", { class: "row" }, fixed, h("label", { for: "cb-fixed" }, "Fault fixed")),
    h("label", { for: "cb-score" }, "Satisfaction (1–5)"), score,
    h("label", { for: "cb-note" }, "Note"), cbNote,
    h("div", { class: "row" }, h("button", { type: "submit" }, "Record callback"))),
  cbOut);

  const aside = h("aside", { class: "actions panel", "aria-label": "Actions" }, dispatchForm, assignForm, returnForm, callbackForm);
  queueMicrotask(() => enableActions(job));
  return aside;
}

// ---------------------------------------------------------------------------------------------
// KPIs: whatever /v1/metrics reports — numbers as tiles, series over time as charts.

const PERCENT_HINT = /(rate|ratio|share|percent|compliance)/i;

function label(key) {
  return key.replaceAll("_", " ").replace(/^./, (c) => c.toUpperCase());
}

function formatValue(key, value) {
  if (typeof value !== "number") return String(value);
  if (PERCENT_HINT.test(key) && value <= 1) return `${(value * 100).toFixed(1)} %`;
  if (/seconds$/.test(key)) return duration(value);
  return Number.isInteger(value) ? String(value) : value.toFixed(2);
}

function collectTiles(data, prefix = "", out = []) {
  for (const [k, v] of Object.entries(data || {})) {
    const key = prefix ? `${prefix} ${k}` : k;
    if (typeof v === "number") out.push([key, v]);
    else if (v && typeof v === "object" && !Array.isArray(v) && out.length < 40) collectTiles(v, key, out);
  }
  return out;
}

function collectSeries(data, prefix = "", out = []) {
  for (const [k, v] of Object.entries(data || {})) {
    const key = prefix ? `${prefix} ${k}` : k;
    if (Array.isArray(v) && v.length && typeof v[0] === "object") {
      const timeKey = Object.keys(v[0]).find((x) => /^(at|date|day|period|start|period_start|bucket|hour|time)$/.test(x));
      if (timeKey) out.push({ key, timeKey, rows: v });
    } else if (v && typeof v === "object" && !Array.isArray(v)) collectSeries(v, key, out);
  }
  return out;
}

async function showKpis() {
  const token = viewToken;
  main.replaceChildren(h("h2", {}, "KPIs"), h("p", { class: "muted" }, "Loading…"));
  const since = new Date(Date.now() - 30 * 86400e3).toISOString().slice(0, 10);
  const [answer, daily] = await Promise.all([
    call("GET", `/v1/metrics?since=${since}`), call("GET", `/v1/metrics?since=${since}&interval=day`),
  ]);
  if (token !== viewToken) return;
  if (!answer.ok) {
    main.replaceChildren(h("h2", {}, "KPIs"), h("p", { class: "notice", id: "kpi-absent" },
      answer.status === 404 ? "KPIs are not available on this server yet." :
        answer.status === 403 ? "KPIs need a supervisor (or admin) key." : problemText(answer)));
    return;
  }
  if (Array.isArray(answer.data.rows)) return showMetricRows(answer.data, daily.ok ? daily.data : null);
  return showAnyMetrics(answer.data);
}

const STAGES = [["dispatch", "Waiting for dispatch"], ["assigned", "Waiting for the technician to set off"],
  ["travel", "Travel"], ["on_site", "On site"], ["parts", "Waiting for parts"], ["customer", "Waiting for the customer"]];
const KPI_FIELDS = [
  ["completion_rate_24h", "Completed within 24 h"], ["jobs", "Jobs reported"], ["completed", "Completed"],
  ["open", "Still open"], ["mean_hours_to_complete", "Mean hours to complete"], ["p90_hours_to_complete", "90th percentile hours"],
  ["first_time_fix_rate", "First-time fix"], ["return_visit_rate", "Return visits"], ["mean_satisfaction", "Satisfaction (1–5)"],
  ["callback_reach_rate", "Callbacks that reached the customer"], ["callbacks", "Callbacks made"], ["compliance_rate", "Compliance"], ["authenticity_rate", "Authentic photos"],
];

function tile(key, text, value, id) {
  return h("div", { class: "tile", id }, h("div", { class: "value" }, value == null ? "—" : formatValue(key, value)),
    h("div", { class: "label" }, text));
}

// GET /v1/metrics as the SLA work serves it: {since, until, rows: [{period, group, jobs, …}]}.
async function showMetricRows(totals, daily) {
  if (!totals.rows.length) {
    main.replaceChildren(h("h2", {}, "KPIs"), h("p", { class: "notice", id: "kpi-empty" }, `No jobs reported from ${totals.since} to ${totals.until}.`));
    return;
  }
  const row = totals.rows[0];
  const known = new Set(KPI_FIELDS.map(([k]) => k));
  const extra = Object.entries(row).filter(([k, v]) => typeof v === "number" && !known.has(k) && !/^(completed_within_24h|cancelled|jobs_reached_by_callback)$/.test(k));
  const tiles = h("div", { class: "tiles", id: "kpi-tiles" },
    KPI_FIELDS.filter(([k]) => k in row).map(([k, text]) => tile(k, text, row[k], `kpi-${k}`)),
    extra.map(([k, v]) => tile(k, label(k), v)));
  const compliance = (row.sla_compliance || []).length ? h("section", { class: "panel", "aria-labelledby": "compliance-title" },
    h("h3", { id: "compliance-title" }, "SLA compliance by policy"),
    h("table", {}, h("thead", {}, h("tr", {}, ["Policy", "Deadline", "Met", "Missed", "Compliance"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, row.sla_compliance.map((c) => h("tr", {}, h("td", {}, c.policy), h("td", {}, c.deadline.replaceAll("_", " ")),
        h("td", {}, c.met), h("td", {}, c.missed), h("td", {}, c.compliance == null ? "—" : formatValue("rate", c.compliance)))))))
    : null;
  // Where the time went: hours per job in each stage, as bars with their numbers written out.
  const perJob = row.hours_per_job || {};
  const most = Math.max(0.001, ...STAGES.map(([k]) => perJob[k] || 0));
  const bars = h("section", { class: "panel", id: "kpi-stages", "aria-labelledby": "stages-title" },
    h("h3", { id: "stages-title" }, "Where the time went (hours per job)"),
    h("ul", { class: "bars" }, STAGES.map(([k, text]) => {
      const bar = h("span", { class: `bar stage-${k}` });
      bar.style.width = `${((perJob[k] || 0) / most) * 100}%`;
      return h("li", {}, h("span", { class: "bar-label" }, text), h("span", { class: "bar-track" }, bar),
        h("span", { class: "bar-value" }, perJob[k] == null ? "—" : perJob[k].toFixed(1)));
    })));
  const charts = h("div", { id: "kpi-charts" });
  main.replaceChildren(h("h2", {}, "KPIs"),
    h("p", { class: "muted" }, `From ${totals.since} to ${totals.until} (UTC days), jobs by the day they were reported.`),
    tiles, h("div", { class: "job-grid" }, bars, compliance), charts);
  if (!daily?.rows?.length) return;
  // Every day of the period on the x axis, days without jobs as gaps.
  const byDay = new Map(daily.rows.filter((r) => r.period).map((r) => [r.period.slice(0, 10), r]));
  const xs = []; const days = [];
  for (let t = Date.parse(`${daily.since}T00:00:00Z`); t < Date.parse(`${daily.until}T00:00:00Z`); t += 86400e3) {
    xs.push(t / 1000);
    days.push(byDay.get(new Date(t).toISOString().slice(0, 10)) || {});
  }
  await chart(charts, "24-hour completion rate by day", xs,
    [["Completed within 24 h", days.map((r) => r.completion_rate_24h ?? null)]], (v) => `${Math.round(v * 100)}%`, [0, 1]);
  const rates = KPI_FIELDS.map(([k]) => k).filter((k) => /rate|satisfaction/.test(k) && k !== "completion_rate_24h" && days.some((r) => r[k] != null));
  if (rates.length) await chart(charts, "Quality by day", xs, rates.map((k) => [label(k), days.map((r) => r[k] ?? null)]));
  await chart(charts, "Where the time went by day (hours per job)", xs,
    STAGES.map(([k, text]) => [text, days.map((r) => r.hours_per_job?.[k] ?? null)]));
}

const PALETTE = ["#0b4f8a", "#b35c00", "#1b7a34", "#8a1b5e", "#4a4a4a", "#006d77"];

async function chart(parent, title, xs, series, format, range) {
  const { default: uPlot } = await import("/ui/vendor/uplot-1.6.31/uPlot.esm.js");
  const box = h("figure", { class: "chart" }, h("figcaption", {}, h("strong", {}, title)));
  parent.append(box);
  // eslint-disable-next-line no-new
  new uPlot({
    width: Math.min(960, main.clientWidth - 40), height: 240,
    series: [{}, ...series.map(([name], i) => ({ label: name, stroke: PALETTE[i % PALETTE.length], width: 2, points: { show: true, size: 6 } }))],
    axes: [{}, format ? { values: (u, vals) => vals.map(format) } : {}],
    scales: { x: { time: true }, ...(range ? { y: { range } } : {}) },
  }, [xs, ...series.map(([, ys]) => ys)], box);
}

// Any other shape: numbers as tiles, lists of rows with a time key as charts.
async function showAnyMetrics(data) {
  const tiles = collectTiles(data);
  const series = collectSeries(data);
  const charts = h("div", { id: "kpi-charts" });
  main.replaceChildren(h("h2", {}, "KPIs"),
    h("div", { class: "tiles", id: "kpi-tiles" }, tiles.map(([k, v]) => tile(k, label(k), v))),
    charts);
  for (const s of series) {
    const numeric = Object.keys(s.rows[0]).filter((k) => k !== s.timeKey && typeof s.rows[0][k] === "number");
    const xs = s.rows.map((r) => Date.parse(r[s.timeKey]) / 1000);
    if (!numeric.length || xs.some(Number.isNaN)) continue;
    await chart(charts, label(s.key), xs, numeric.map((k) => [label(k), s.rows.map((r) => r[k])]));
  }
}

// ---------------------------------------------------------------------------------------------

if (signedIn()) loadTechnicians().then(route); else showSignIn();
