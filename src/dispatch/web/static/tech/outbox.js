// The phone's outbox: actions wait here (IndexedDB, so photos fit) until they are sent, once,
// in the order they were made. Each carries the device time it happened and its own
// Idempotency-Key, so a resend after a lost answer is recognised by the server.
const DB_NAME = "dispatch-tech";
const STORE = "outbox";

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "seq", autoIncrement: true });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function tx(mode, fn) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const t = db.transaction(STORE, mode);
      const result = fn(t.objectStore(STORE));
      t.oncomplete = () => resolve(result && "result" in result ? result.result : undefined);
      t.onerror = () => reject(t.error);
      t.onabort = () => reject(t.error);
    });
  } finally {
    db.close();
  }
}

export const outbox = {
  add: (action) => tx("readwrite", (s) => s.add(action)),
  put: (action) => tx("readwrite", (s) => s.put(action)),
  remove: (seq) => tx("readwrite", (s) => s.delete(seq)),
  all: () => tx("readonly", (s) => s.getAll()), // in key order: the order they were made
  clear: () => tx("readwrite", (s) => s.clear()),
};
