// Technician app: my jobs in order, call and navigate, big status buttons, sign-off photo, parts.
// Every action goes through the outbox first, so a tap with no signal is kept and sent later,
// once, in order, with the device time it happened.
import {
  Api, NetworkError, STATUS_LABELS, SLA_LABELS, h, keepingFocus, morphChildren, multipartFile, problemText, uuid, when,
} from "/ui/common/api.js";
import { outbox } from "/tech/outbox.js";

const KEY_STORE = "dispatch.tech.key";
const JOBS_STORE = "dispatch.tech.jobs";
const REFUSED_STORE = "dispatch.tech.refused";
const MY_STATUSES = ["assigned", "en_route", "on_site", "waiting_parts", "ready"];
const SEND_EVERY_MS = 5000;
const REFRESH_EVERY_MS = 15000;

const main = document.getElementById("main");
const connection = document.getElementById("connection");
let api = null;
let jobs = JSON.parse(localStorage.getItem(JOBS_STORE) || "[]");
let pending = [];
let sending = false;
let openSheet = null; // {jobId, kind} so a repaint keeps the open form
// What this server offers ("POST /v1/jobs/{job_id}/photos" …), from its OpenAPI document, so
// the sign-off form shows only what the server can take. Kept for offline starts.
const CAPS_STORE = "dispatch.tech.capabilities";
let capabilities = new Set(JSON.parse(localStorage.getItem(CAPS_STORE) || "[]"));

async function loadCapabilities() {
  try {
    const r = await fetch("/openapi.json");
    if (!r.ok) return;
    const spec = await r.json();
    const found = Object.entries(spec.paths || {}).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    capabilities = new Set(found);
    localStorage.setItem(CAPS_STORE, JSON.stringify(found));
  } catch { /* offline: keep what we knew */ }
}

const has = (op) => capabilities.has(op);

// ---------------------------------------------------------------------------------------------
// Where the phone is: sent with every tap and every minute while en route, so "nearest" is
// measured from where technicians are, not where they were in the morning. Only with the
// person's permission (the browser asks; the switch below turns it off), and never in the way:
// a tap is queued at once with the last fix if it is fresh, and a new fix, asked for with a
// short timeout, follows as a location report of its own when it comes. Denied, slow or
// absent geolocation only means no position.
const SHARE_STORE = "dispatch.tech.sharePosition";
const FIX_FRESH_MS = 2 * 60 * 1000;
const FIX_TIMEOUT_MS = 8000;
const EN_ROUTE_REPORT_MS = 60 * 1000;
let lastFix = null; // {lat, lon, at}: at is the fix's own time (ms)

const sharing = () => "geolocation" in navigator && localStorage.getItem(SHARE_STORE) !== "off";

// `maxAgeMs`: how old a fix the phone may answer with from its own cache.
function locate(maxAgeMs = 15 * 1000) {
  if (!sharing()) return Promise.resolve(null);
  return new Promise((resolve) => {
    const done = (fix) => { clearTimeout(giveUp); resolve(fix); };
    // Some browsers never call back at all while a permission prompt is open: give up anyway.
    const giveUp = setTimeout(() => resolve(null), FIX_TIMEOUT_MS + 1000);
    try {
      navigator.geolocation.getCurrentPosition(
        (p) => {
          lastFix = { lat: Number(p.coords.latitude.toFixed(6)), lon: Number(p.coords.longitude.toFixed(6)), at: Math.min(p.timestamp || Date.now(), Date.now()) };
          done(lastFix);
        },
        () => done(null),
        { timeout: FIX_TIMEOUT_MS, maximumAge: maxAgeMs, enableHighAccuracy: false },
      );
    } catch { done(null); }
  });
}

function freshFix() {
  return sharing() && lastFix && Date.now() - lastFix.at <= FIX_FRESH_MS ? lastFix : null;
}

// Best effort, straight to the server (not through the outbox): a position is worth sending
// only while it is current, and the server ignores one older than what it has.
async function reportPosition(technicianId, fix) {
  if (!fix || technicianId == null || !api || !navigator.onLine) return;
  try {
    await api.post(`/v1/technicians/${technicianId}/location`, { lat: fix.lat, lon: fix.lon, at: new Date(fix.at).toISOString() });
  } catch { /* no signal: the next one will do */ }
}

function positionAfterTap(job, carried) {
  locate().then((fix) => { if (fix && fix !== carried) reportPosition(job.technician_id, fix); });
}

function reportWhileEnRoute() {
  const going = jobs.find((j) => localStatus(j) === "en_route");
  if (going && sharing()) locate(0).then((fix) => reportPosition(going.technician_id, fix)); // where the van is now
}

// ---------------------------------------------------------------------------------------------
// Sign-in

function signedIn() {
  const key = localStorage.getItem(KEY_STORE);
  api = key ? new Api(key) : null;
  return Boolean(api);
}

function showSignIn(message) {
  document.getElementById("signout").classList.add("hidden");
  const input = h("input", { id: "key", type: "password", autocomplete: "current-password", required: true, "aria-describedby": "key-help" });
  const error = h("p", { class: message ? "error" : "hidden", role: "alert" }, message || "");
  main.replaceChildren(h("section", { class: "signin", "aria-labelledby": "signin-title" },
    h("h2", { id: "signin-title" }, "Sign in"),
    h("form", { onsubmit: async (e) => {
      e.preventDefault();
      const key = input.value.trim();
      let probe;
      try { probe = await new Api(key).get("/v1/jobs?limit=1"); } catch {
        error.textContent = "No connection. Sign in once you have signal."; error.className = "error"; return;
      }
      if (!probe.ok) {
        error.textContent = probe.status === 401 ? "That key was not accepted." : problemText(probe);
        error.className = "error"; input.focus(); return;
      }
      localStorage.setItem(KEY_STORE, key);
      start();
    } },
    h("label", { for: "key" }, "Your key"), input,
    h("p", { id: "key-help", class: "muted" }, "From your dispatcher. You stay signed in on this phone."),
    error, h("button", { type: "submit" }, "Sign in"))));
  input.focus();
}

document.getElementById("signout").addEventListener("click", async () => {
  if (pending.length && !confirm(`${pending.length} action(s) are not sent yet and will be lost. Sign out anyway?`)) return;
  await outbox.clear();
  localStorage.removeItem(KEY_STORE); localStorage.removeItem(JOBS_STORE); localStorage.removeItem(REFUSED_STORE);
  jobs = []; pending = [];
  showSignIn();
});

// ---------------------------------------------------------------------------------------------
// Jobs, with what is still waiting in the outbox laid over them

async function refreshJobs() {
  if (!api || !navigator.onLine) return;
  const q = new URLSearchParams(MY_STATUSES.map((s) => ["status", s]));
  q.set("limit", "100");
  let answer;
  try { answer = await api.get(`/v1/jobs?${q}`); } catch { return paint(); }
  if (answer.status === 401) { localStorage.removeItem(KEY_STORE); return showSignIn("Your key is no longer accepted. Ask your dispatcher for a new one."); }
  if (!answer.ok) return paint();
  jobs = answer.data.items;
  localStorage.setItem(JOBS_STORE, JSON.stringify(jobs));
  paint();
}

// What the phone believes the status is: the server's, moved on by taps not yet sent.
function localStatus(job) {
  let status = job.status;
  for (const a of pending) {
    if (a.job_id !== job.id) continue;
    if (a.kind === "status") status = a.body.status;
    if (a.kind === "part") status = status === "completed" ? status : "waiting_parts?";
  }
  return status;
}

const NEXT = {
  assigned: ["en_route", "on_site"], en_route: ["on_site"], on_site: ["completed"],
};

function canDo(status, target) {
  if (target === "parts" || target === "unable") return ["assigned", "en_route", "on_site"].includes(status);
  return (NEXT[status] || []).includes(target);
}

// ---------------------------------------------------------------------------------------------
// The outbox: queue, then send in order

async function enqueue(kind, job, body, extra = {}) {
  const action = {
    id: uuid(), // the Idempotency-Key: one per action, the same on every resend
    kind, job_id: job.id, body, at: new Date().toISOString(), customer: job.customer.name, ...extra,
  };
  await outbox.add(action);
  await reloadOutbox();
  send();
  return action;
}

async function reloadOutbox() {
  pending = await outbox.all();
  paint();
}

function describe(action) {
  const what = {
    status: () => STATUS_LABELS[action.body.status] || action.body.status,
    part: () => `Part ${action.body.quantity}× ${action.body.sku}`,
    photo: () => "Sign-off photo",
    signoff: () => `Sign-off by ${action.body.signer_name}`,
  }[action.kind]();
  return `${what} — job #${action.job_id} (${action.customer}), ${new Date(action.at).toLocaleTimeString()}`;
}

function request(action) {
  const headers = { "Idempotency-Key": action.id };
  const base = `/v1/jobs/${action.job_id}`;
  switch (action.kind) {
    case "status": return api.request("POST", `${base}/status`, { body: { ...action.body, at: action.at }, headers });
    case "part": return api.request("POST", `${base}/parts`, { body: action.body, headers });
    case "signoff": return api.request("POST", `${base}/signoff`, { body: action.body, headers });
    case "photo":
      return api.request("POST", `${base}/photos`, { raw: multipartFile("file", action.blob, action.filename, action.id), headers });
    default: throw new Error(`unknown action ${action.kind}`);
  }
}

// A refusal that only says "it is already so" means an earlier send got through but its
// answer was lost (servers without Idempotency-Key support answer a replay this way).
function alreadyDone(action, answer) {
  return action.kind === "status" && answer.status === 409 && answer.data?.current_status === action.body.status;
}

async function send() {
  if (sending || !api || !navigator.onLine) return;
  sending = true;
  try {
    // One sender across tabs too (Web Locks), so two open tabs never send the same action.
    if (navigator.locks) await navigator.locks.request("dispatch-tech-outbox", { ifAvailable: true }, (lock) => (lock ? drain() : null));
    else await drain();
  } finally {
    sending = false;
    pending = await outbox.all();
    paint();
  }
  if (!pending.length) refreshJobs();
}

// Oldest first, one at a time, until the outbox is empty or the way is blocked; taps made
// meanwhile join the end of the line and go in the same run.
async function drain() {
  for (;;) {
    const [action] = await outbox.all();
    if (!action || !navigator.onLine) return;
    let answer;
    try { answer = await request(action); } catch (err) {
      if (err instanceof NetworkError) return; // no signal: keep it and everything after it
      throw err;
    }
    if (answer.status === 401) { localStorage.removeItem(KEY_STORE); return; }
    // The server is busy or down, or still working on an earlier attempt of this very action
    // (409 idempotency-key-in-use): try again later, still in order.
    if (answer.status >= 500 || answer.status === 429 || answer.status === 408) return;
    if (answer.status === 409 && answer.data?.code === "idempotency-key-in-use") return;
    if (answer.ok && action.kind === "photo") {
      // The sign-off waiting for this photo learns its id.
      for (const later of await outbox.all()) {
        if (later.kind === "signoff" && later.photo_ref === action.id) {
          later.body = { ...later.body, photo_id: answer.data.id };
          await outbox.put(later);
        }
      }
    }
    if (!answer.ok && !alreadyDone(action, answer)) {
      // Refused for good (409, 422, 404 …): say so and go on with the rest.
      const refused = JSON.parse(localStorage.getItem(REFUSED_STORE) || "[]");
      refused.push({ what: describe(action), why: problemText(answer) });
      localStorage.setItem(REFUSED_STORE, JSON.stringify(refused.slice(-20)));
    }
    await outbox.remove(action.seq);
    pending = await outbox.all();
    paint();
  }
}

window.addEventListener("online", () => { paint(); send(); });
window.addEventListener("offline", paint);

// ---------------------------------------------------------------------------------------------
// Screen

function paintConnection() {
  connection.textContent = navigator.onLine ? (pending.length ? "Sending…" : "Online") : "Offline";
}

function outboxPanel() {
  if (!pending.length) return null;
  return h("section", { class: "outbox", id: "outbox", "aria-labelledby": "outbox-title" },
    h("h2", { id: "outbox-title" }, `${pending.length} waiting to be sent`),
    h("ol", {}, pending.map((a) => h("li", {}, describe(a)))),
    navigator.onLine ? null : h("p", {}, "They go out by themselves when you have signal."));
}

function refusedPanel() {
  const refused = JSON.parse(localStorage.getItem(REFUSED_STORE) || "[]");
  if (!refused.length) return null;
  return h("section", { class: "refused", id: "refused", role: "alert", "aria-labelledby": "refused-title" },
    h("h2", { id: "refused-title" }, "Not accepted by the office"),
    h("ul", {}, refused.map((r) => h("li", {}, `${r.what}: ${r.why}`))),
    h("button", { type: "button", class: "secondary", onclick: () => { localStorage.removeItem(REFUSED_STORE); paint(); } }, "Dismiss"));
}

function mapsUrl(job) {
  const c = job.customer;
  const where = c.lat != null ? `${c.lat},${c.lon}` : c.address;
  return `https://www.google.com/maps/dir/?api=1&destination=${encodeURIComponent(where)}`;
}

function stepButton(job, status, target, text, cls) {
  const enabled = canDo(status, target);
  return h("button", {
    type: "button", class: cls, disabled: !enabled, dataset: { action: target },
    "aria-label": `${text}, job ${job.id}`,
    onclick: () => {
      if (target === "completed") { openSheet = { jobId: job.id, kind: "signoff" }; paint(); focusSheet(); return; }
      if (target === "parts" || target === "unable") { openSheet = { jobId: job.id, kind: target }; paint(); focusSheet(); return; }
      const fix = freshFix();
      enqueue("status", job, fix ? { status: target, lat: fix.lat, lon: fix.lon } : { status: target });
      positionAfterTap(job, fix);
    },
  }, text);
}

function focusSheet() {
  const first = document.querySelector(".sheet input, .sheet button");
  if (first) first.focus();
}

function signoffSheet(job) {
  const preview = h("img", { alt: "Sign-off photo preview", class: "hidden", id: `preview-${job.id}` });
  const photo = h("input", { id: `photo-${job.id}`, type: "file", accept: "image/*", capture: "environment",
    onchange: () => {
      const f = photo.files[0];
      if (f) { preview.src = URL.createObjectURL(f); preview.classList.remove("hidden"); }
    } });
  const signer = h("input", { id: `signer-${job.id}`, type: "text", required: true, maxlength: 200, autocomplete: "off" });
  const canPhoto = has("POST /v1/jobs/{job_id}/photos");
  const canSignoff = has("POST /v1/jobs/{job_id}/signoff");
  return h("form", { class: "sheet", "aria-label": `Sign-off for job ${job.id}`, dataset: { key: `signoff-${job.id}`, morph: "skip" }, onsubmit: async (e) => {
    e.preventDefault();
    const file = canPhoto ? photo.files[0] : null;
    let photoAction = null;
    if (file) photoAction = await enqueue("photo", job, {}, { blob: file, filename: file.name || "signoff.jpg" });
    if (canSignoff) {
      await enqueue("signoff", job, { signer_name: signer.value.trim() }, { photo_ref: photoAction ? photoAction.id : null });
    }
    openSheet = null;
    const fix = freshFix();
    await enqueue("status", job, fix ? { status: "completed", lat: fix.lat, lon: fix.lon } : { status: "completed" });
    positionAfterTap(job, fix);
  } },
  canPhoto ? [h("label", { for: `photo-${job.id}` }, "Sign-off photo"), photo, preview] : null,
  canSignoff ? [h("label", { for: `signer-${job.id}` }, "Signed by (customer's name)"), signer]
    : h("p", { class: "muted" }, "Sign-off is not taken by this server yet: this only marks the job done."),
  h("div", { class: "row" },
    h("button", { type: "submit", class: "done" }, "Complete job"),
    h("button", { type: "button", class: "secondary", onclick: () => { openSheet = null; paint(); } }, "Cancel")));
}

function partsSheet(job) {
  const sku = h("input", { id: `sku-${job.id}`, type: "text", required: true, maxlength: 64, pattern: "[A-Za-z0-9_.\\-]+", autocapitalize: "characters" });
  const qty = h("input", { id: `qty-${job.id}`, type: "number", min: 1, max: 1000, value: 1, required: true, inputmode: "numeric" });
  return h("form", { class: "sheet", "aria-label": `Ask for a part for job ${job.id}`, dataset: { key: `parts-${job.id}`, morph: "skip" }, onsubmit: async (e) => {
    e.preventDefault();
    openSheet = null;
    await enqueue("part", job, { sku: sku.value.trim(), quantity: Number(qty.value) });
  } },
  h("label", { for: `sku-${job.id}` }, "Part number (SKU)"), sku,
  h("label", { for: `qty-${job.id}` }, "Quantity"), qty,
  h("div", { class: "row" },
    h("button", { type: "submit" }, "Ask for part"),
    h("button", { type: "button", class: "secondary", onclick: () => { openSheet = null; paint(); } }, "Cancel")));
}

// The van broke down, the skill is wrong after all: say so from the phone, with why, and the job
// goes back to the dispatcher at once instead of waiting for a phone call.
function unableSheet(job) {
  const why = h("textarea", { id: `why-${job.id}`, required: true, maxlength: 500, rows: 3 });
  return h("form", { class: "sheet", "aria-label": `Cannot do job ${job.id}`, dataset: { key: `unable-${job.id}`, morph: "skip" }, onsubmit: async (e) => {
    e.preventDefault();
    openSheet = null;
    const fix = freshFix();
    const body = { status: "unable", note: why.value.trim() };
    await enqueue("status", job, fix ? { ...body, lat: fix.lat, lon: fix.lon } : body);
    positionAfterTap(job, fix);
  } },
  h("label", { for: `why-${job.id}` }, "Why can't you do it? (the dispatcher reads this)"), why,
  h("div", { class: "row" },
    h("button", { type: "submit" }, "Give the job back"),
    h("button", { type: "button", class: "secondary", onclick: () => { openSheet = null; paint(); } }, "Cancel")));
}

const SHEETS = { signoff: signoffSheet, parts: partsSheet, unable: unableSheet };

function card(job) {
  const status = localStatus(job);
  const waiting = pending.filter((a) => a.job_id === job.id).length;
  const c = job.customer;
  const phone = c.phone ? c.phone.replace(/[^+\d]/g, "") : null;
  const sheet = openSheet && openSheet.jobId === job.id ? SHEETS[openSheet.kind](job) : null;
  return h("article", { class: "card", id: `job-${job.id}`, "aria-labelledby": `job-${job.id}-title`, dataset: { key: `job-${job.id}` } },
    h("h2", { id: `job-${job.id}-title` }, `${c.name}`),
    h("div", { class: "meta" },
      h("span", { class: "status-pill", dataset: { status } }, STATUS_LABELS[status] || (status === "waiting_parts?" ? "Part asked" : status)),
      h("span", { class: `badge sla-${job.sla.state}` }, SLA_LABELS[job.sla.state] || job.sla.state),
      h("span", { class: "muted" }, `due ${when(job.due_at)}`),
      h("span", { class: waiting ? "pending" : "pending hidden", id: `pending-${job.id}` }, waiting ? `${waiting} not sent` : "")),
    h("p", {}, `${job.product.category}${job.product.model ? " · " + job.product.model : ""} — ${job.fault}`),
    h("address", {}, c.address),
    h("div", { class: "links" },
      phone ? h("a", { href: `tel:${phone}`, "aria-label": `Call ${c.name}` }, "Call") : h("span", { class: "muted" }, "No phone"),
      h("a", { href: mapsUrl(job), target: "_blank", rel: "noopener", "aria-label": `Navigate to ${c.address}` }, "Navigate")),
    h("div", { class: "steps" },
      stepButton(job, status, "en_route", "En route"),
      stepButton(job, status, "on_site", "On site"),
      stepButton(job, status, "completed", "Done", "done"),
      stepButton(job, status, "parts", "Needs parts", "parts"),
      stepButton(job, status, "unable", "Can't do it", "unable")),
    sheet);
}

function paint() {
  if (!api) return;
  paintConnection();
  // Keep typing and focus in an open form: repaint everything else around it.
  const active = document.activeElement;
  if (openSheet && active && active.closest && active.closest(".sheet")) {
    const out = document.getElementById("outbox-slot");
    if (out) out.replaceChildren(...[outboxPanel(), refusedPanel()].filter(Boolean));
    for (const job of jobs) {
      const label = document.getElementById(`pending-${job.id}`);
      const waiting = pending.filter((a) => a.job_id === job.id).length;
      if (label) { label.textContent = waiting ? `${waiting} not sent` : ""; label.classList.toggle("hidden", !waiting); }
    }
    return;
  }
  const list = jobs.filter((j) => !["completed", "unable"].includes(localStatus(j)) || pending.some((a) => a.job_id === j.id));
  // Updated in place, card by card (see morph): a repaint every few seconds must not throw away
  // the button the technician has focused, or an open form.
  keepingFocus(() => morphChildren(main, [
    h("div", { id: "outbox-slot" }, ...[outboxPanel(), refusedPanel()].filter(Boolean)),
    list.length ? h("div", { id: "jobs" }, list.map(card))
      : h("p", { class: "empty muted", id: "no-jobs" }, "No jobs for you right now."),
    shareSwitch(),
  ]));
}

function shareSwitch() {
  if (!("geolocation" in navigator)) return h("p", { class: "muted share", id: "share" }, "This phone cannot tell where it is.");
  const box = h("input", { id: "share-position", type: "checkbox", checked: sharing(), onchange: () => {
    localStorage.setItem(SHARE_STORE, box.checked ? "on" : "off");
    if (box.checked) locate();
  } });
  return h("p", { class: "share", id: "share" }, box, " ",
    h("label", { for: "share-position" }, "Send my position with my taps and while I am on the way, so the office sends whoever is nearest"));
}

async function start() {
  if (!signedIn()) return showSignIn();
  document.getElementById("signout").classList.remove("hidden");
  await Promise.all([reloadOutbox(), loadCapabilities()]);
  await refreshJobs();
  send();
  locate(); // a first fix (the browser asks the person), so the first tap can carry it
}

setInterval(send, SEND_EVERY_MS);
setInterval(reportWhileEnRoute, EN_ROUTE_REPORT_MS);
setInterval(() => { if (!pending.length && !(openSheet)) refreshJobs(); }, REFRESH_EVERY_MS);

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/tech/sw.js", { scope: "/tech/" }).catch(() => {});
}

start();
