// Service worker: keeps the app shell so the app opens with no connection. API calls are
// never cached here; the app keeps its own copy of the job list and its outbox.
const SHELL = "tech-shell-v2";
const FILES = [
  "/tech/", "/tech/index.html", "/tech/tech.css", "/tech/tech.js", "/tech/outbox.js",
  "/tech/manifest.webmanifest", "/tech/icon.svg", "/tech/icon-192.png", "/tech/icon-512.png", "/ui/common/api.js", "/ui/common/base.css",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL).then((c) => c.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k !== SHELL).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

// The shell: network first (a new release shows at once), the cached copy when offline.
self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== location.origin) return;
  if (!(url.pathname.startsWith("/tech/") || url.pathname.startsWith("/ui/common/"))) return;
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(SHELL).then((c) => c.put(event.request, copy));
        }
        return response;
      })
      .catch(() => caches.match(event.request, { ignoreSearch: true })
        .then((hit) => hit || caches.match("/tech/index.html"))),
  );
});
