// The bidder's key (docs/protocol.md §1, §2.4): an Ed25519 key pair made by WebCrypto with a
// non-extractable private key, kept in IndexedDB with the account and session it is bound to.
// Bid requests are signed over "gavel/bid-request/v1\n" + canonical JSON (RFC 8785).

import { api } from "./api.js";

const DB_NAME = "gavel";
const STORE = "identity";
const RECORD = "bidder";
export const BID_REQUEST_PREFIX = "gavel/bid-request/v1\n";

function openDatabase() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(new Error("the browser's key storage could not be opened"));
  });
}

async function storeOp(mode, operation) {
  const database = await openDatabase();
  try {
    return await new Promise((resolve, reject) => {
      const transaction = database.transaction(STORE, mode);
      const request = operation(transaction.objectStore(STORE));
      transaction.oncomplete = () => resolve(request.result);
      transaction.onerror = () => reject(new Error("the browser's key storage failed"));
    });
  } finally {
    database.close();
  }
}

export function loadIdentity() {
  return storeOp("readonly", (store) => store.get(RECORD)).then((value) => value || null);
}

export function saveIdentity(identity) {
  return storeOp("readwrite", (store) => store.put(identity, RECORD));
}

export function forgetIdentity() {
  return storeOp("readwrite", (store) => store.delete(RECORD));
}

/** A new Ed25519 key pair; the private key cannot be exported. */
export function generateKeyPair() {
  return crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
}

export function toBase64(bytes) {
  let text = "";
  const view = new Uint8Array(bytes);
  for (let i = 0; i < view.length; i++) text += String.fromCharCode(view[i]);
  return btoa(text);
}

export function fromBase64(text) {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

export async function publicKeyBase64(keyPair) {
  return toBase64(await crypto.subtle.exportKey("raw", keyPair.publicKey));
}

/**
 * RFC 8785 canonical JSON for the values the protocol uses: strings, safe integers, booleans,
 * null, arrays and objects (keys sorted by UTF-16 code units, as RFC 8785 3.2.3 requires).
 */
export function canonicalJson(value) {
  if (value === null || typeof value === "boolean" || typeof value === "string") {
    return JSON.stringify(value);
  }
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new RangeError("only safe integers can be signed");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(value[key])}`).join(",")}}`;
  }
  throw new TypeError("this value cannot be put into canonical JSON");
}

/** The exact bytes a bid request signature covers (auction.protocol.signed_bytes). */
export function bidSignedBytes(payload) {
  return new TextEncoder().encode(BID_REQUEST_PREFIX + canonicalJson(payload));
}

/** A fresh idempotency key: "b-" and 16 random hex digits. */
export function newIdempotencyKey(prefix = "b") {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return `${prefix}-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/**
 * Sign a bid request (I1). Returns the websocket `bid` message with its base64 `sig`.
 * `request`: {lot, kind, amount, currency, idempotency_key}.
 */
export async function signBid(privateKey, account, request) {
  const payload = {
    account,
    amount: request.amount,
    currency: request.currency,
    idempotency_key: request.idempotency_key,
    kind: request.kind,
    lot: request.lot,
  };
  const signature = await crypto.subtle.sign({ name: "Ed25519" }, privateKey, bidSignedBytes(payload));
  return {
    type: "bid", lot: request.lot, kind: request.kind, amount: request.amount,
    currency: request.currency, idempotency_key: request.idempotency_key, sig: toBase64(signature),
  };
}

/**
 * The stored identity with a live session, creating the key pair and account when there is
 * none (POST /api/accounts) or when the session expired.
 */
export async function ensureAccount() {
  const existing = await loadIdentity();
  const nowUs = Date.now() * 1000;
  if (existing && existing.session && (!existing.expires_us || existing.expires_us > nowUs + 60e6)) {
    return existing;
  }
  const keyPair = await generateKeyPair(); // a new account gets a new key (no key reuse)
  const created = await api("/api/accounts", {
    method: "POST", token: null, body: { public_key: await publicKeyBase64(keyPair) },
  });
  const identity = {
    keyPair, account: created.account, session: created.session, expires_us: created.expires_us,
  };
  await saveIdentity(identity);
  return identity;
}
