// Which account this browser acts for (docs/protocol.md §1, "My auctions"): the registering
// browser holds the signing key and its session in IndexedDB (keys.js); another browser logs
// into the same account with a sign-in code and keeps only a session, in localStorage: it can
// watch the account's lots and download receipts and documents, but it cannot sign bids.

import { api } from "./api.js";
import { loadIdentity } from "./keys.js";

const WATCH_KEY = "gavel-watch-session";

/** Words for a browser that has a session but not the key. */
export const SIGNED_ELSEWHERE = "Bids are signed by the browser where you registered: bid from that browser, "
  + "or register this browser as a new bidder (its own identity check and deposit).";

function fresh(record) {
  return record && record.session && !(record.expires_us && record.expires_us < Date.now() * 1000);
}

/** {account, session, expires_us, canSign} or null. */
export async function currentSession() {
  let identity = null;
  try {
    identity = await loadIdentity();
  } catch {
    identity = null;
  }
  if (fresh(identity)) {
    return { account: identity.account, session: identity.session, expires_us: identity.expires_us, canSign: true };
  }
  try {
    const stored = JSON.parse(localStorage.getItem(WATCH_KEY) || "null");
    if (fresh(stored)) return { ...stored, canSign: false };
  } catch {
    // an unreadable record is the same as none
  }
  return null;
}

/** Log this browser into an account with its sign-in code; throws ApiError. */
export async function signInWithCode(code) {
  const body = await api("/api/sessions", { method: "POST", body: { code: code.trim() }, token: null });
  const record = { account: body.account, session: body.session, expires_us: body.expires_us };
  localStorage.setItem(WATCH_KEY, JSON.stringify(record));
  return { ...record, canSign: false };
}

export function signOutWatcher() {
  localStorage.removeItem(WATCH_KEY);
}
