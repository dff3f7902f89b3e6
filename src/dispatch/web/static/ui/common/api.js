// The one way both apps talk to the service: JSON over /v1 with `Authorization: Bearer <key>`.
// Answers are {status, ok, data}; a network failure throws NetworkError so callers can queue.

export class NetworkError extends Error {}

export class Api {
  constructor(key) {
    this.key = key;
  }

  async request(method, path, { body, form, raw, headers = {} } = {}) {
    const init = { method, headers: { Accept: "application/json", ...headers } };
    if (this.key) init.headers.Authorization = `Bearer ${this.key}`;
    if (raw) {
      init.body = raw.body; // already encoded; the caller sets Content-Type
      init.headers["Content-Type"] = raw.type;
    } else if (form) {
      init.body = form; // multipart: the browser sets the boundary
    } else if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new NetworkError(String(err));
    }
    let data = null;
    const type = response.headers.get("content-type") || "";
    if (type.includes("json")) {
      try { data = await response.json(); } catch { data = null; }
    }
    return { status: response.status, ok: response.ok, data };
  }

  get(path) { return this.request("GET", path); }
  post(path, body, headers) { return this.request("POST", path, { body, headers }); }
}

// A problem details body as one line for a person.
export function problemText(answer) {
  const d = answer && answer.data;
  if (!d) return `HTTP ${answer ? answer.status : "?"}`;
  if (Array.isArray(d.errors) && d.errors.length) {
    return `${d.detail || d.title || "Refused"}: ` +
      d.errors.map((e) => `${(e.loc || []).filter((x) => x !== "body").join(".")} ${e.msg}`).join("; ");
  }
  return d.detail || d.title || `HTTP ${answer.status}`;
}

// A multipart/form-data body with one file, byte for byte the same on every resend (the boundary
// comes from `seed`), so a replay with the same Idempotency-Key is the same request.
export function multipartFile(field, blob, filename, seed) {
  const boundary = `----dispatch-${seed}`;
  const name = (filename || "photo").replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 100);
  const head = `--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="${name}"\r\n` +
    `Content-Type: ${blob.type || "application/octet-stream"}\r\n\r\n`;
  return { body: new Blob([head, blob, `\r\n--${boundary}--\r\n`]), type: `multipart/form-data; boundary=${boundary}` };
}

export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// Small DOM helper: h("div", {class: "x", onclick}, child, "text", ...)
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function duration(seconds) {
  const sign = seconds < 0 ? "−" : "";
  let s = Math.abs(Math.trunc(seconds));
  const d = Math.floor(s / 86400); s -= d * 86400;
  const hh = Math.floor(s / 3600); s -= hh * 3600;
  const mm = Math.floor(s / 60); s -= mm * 60;
  const pad = (n) => String(n).padStart(2, "0");
  return `${sign}${d ? d + "d " : ""}${pad(hh)}:${pad(mm)}:${pad(s)}`;
}

export function when(iso) {
  if (!iso) return "—";
  const t = new Date(iso);
  return t.toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}

export const STATUS_LABELS = {
  new: "New", assigned: "Assigned", en_route: "En route", on_site: "On site", completed: "Completed",
  unable: "Unable", waiting_parts: "Waiting for parts", ready: "Parts in", cancelled: "Cancelled", closed: "Closed",
};
export const SLA_LABELS = { on_track: "On track", at_risk: "At risk", breached: "Breached", met: "Met", missed: "Missed", cancelled: "Cancelled" };
export const OPEN_STATUSES = ["new", "assigned", "en_route", "on_site", "unable", "waiting_parts", "ready"];

// Bring `from` (in the page) in line with `to` (freshly built) while keeping every element that
// is still there, so a poll never throws away keyboard focus, a text selection or an open menu.
// Children are matched by `data-key` (rows, cards) or else by position; an element is kept
// only for one of the same tag, `id` and `data-key`, whose listeners are therefore the same
// kind, and one marked `data-morph="skip"` is kept as it is. Returns the element now in the page.
export function morph(from, to) {
  if (from.nodeType !== to.nodeType || from.nodeName !== to.nodeName ||
      (from.nodeType === Node.ELEMENT_NODE && (from.id !== to.id || from.dataset.key !== to.dataset.key))) {
    from.replaceWith(to);
    return to;
  }
  if (from.nodeType !== Node.ELEMENT_NODE) {
    if (from.nodeValue !== to.nodeValue) from.nodeValue = to.nodeValue;
    return from;
  }
  if (to.dataset.morph === "skip") return from; // e.g. a form being filled in: left as the person has it
  for (const { name } of [...from.attributes]) if (!to.hasAttribute(name)) from.removeAttribute(name);
  for (const { name, value } of [...to.attributes]) if (from.getAttribute(name) !== value) from.setAttribute(name, value);
  // Properties a person changes, which attributes no longer reflect once touched.
  if ("disabled" in from) from.disabled = to.disabled;
  morphChildren(from, [...to.childNodes]);
  return from;
}

export function morphChildren(parent, wanted) {
  const keyed = new Map();
  for (const child of parent.childNodes) if (child.dataset?.key) keyed.set(child.dataset.key, child);
  let cursor = parent.firstChild;
  for (const next of wanted) {
    const match = next.dataset?.key ? keyed.get(next.dataset.key) : cursor && !cursor.dataset?.key ? cursor : null;
    let node;
    if (match) {
      if (match !== cursor) parent.insertBefore(match, cursor); // moved: only rows whose place changed
      node = morph(match, next);
    } else {
      parent.insertBefore(next, cursor);
      node = next;
    }
    cursor = node.nextSibling;
  }
  while (cursor) {
    const gone = cursor;
    cursor = cursor.nextSibling;
    gone.remove();
  }
}

// Run a repaint and give focus back to the element that had it, if it is still on the page (a
// row that moved up is taken out and put back, which blurs what was focused inside it).
export function keepingFocus(repaint) {
  const focused = document.activeElement;
  const result = repaint();
  if (focused && focused !== document.body && focused.isConnected && document.activeElement !== focused) {
    focused.focus({ preventScroll: true });
  }
  return result;
}
