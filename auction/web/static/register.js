// Registration: identity check, registration for a lot, deposit, bidder code
// (docs/protocol.md §1).

import { api, ApiError, errorWords, setBearer } from "./api.js";
import { ensureAccount, loadIdentity, newIdempotencyKey } from "./keys.js";
import { amountWordings, formatMoney } from "./money.js";
import { confirmDeposit } from "./notice.js";
import { byId, el, say, statusWords } from "./util.js";
import { GavelSocket } from "./ws.js";

const POLL_MS = 1000;
const BINDING_REFUSALS = ["DOCUMENT_IN_USE", "IDENTITY_BOUND", "REGISTERED_ON_OPEN_LOT"];
let identity = null;
let lots = [];
let socket = null;
let polling = null;

function selectedLot() {
  return byId("lot").value;
}

function lotById(id) {
  return lots.find((lot) => lot.lot_id === id);
}

function documentTypeChanged() {
  const passport = byId("document-type").value === "PASSPORT_TD3";
  byId("document-label").textContent = passport ? "Machine-readable zone (two lines)" : "Identity number";
  byId("document-hint").textContent = passport
    ? "The two 44-character lines at the bottom of the photo page, one per line."
    : "The 18-character number on the card.";
  byId("document").rows = passport ? 3 : 2;
}

async function me() {
  try {
    return await api("/api/me");
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 404)) return null;
    throw error;
  }
}

function setVerified(verified) {
  byId("register-button").disabled = !verified;
  if (verified) say(byId("identity-result"), "Your identity is verified.", "ok");
}

async function checkIdentity(event) {
  event.preventDefault();
  const name = byId("name").value.trim();
  const documentType = byId("document-type").value;
  let documentText = byId("document").value.trim().toUpperCase();
  if (documentType === "PASSPORT_TD3") {
    documentText = documentText.split(/\r?\n/).map((line) => line.trim()).filter(Boolean).join("\n");
  } else {
    documentText = documentText.replace(/\s+/g, "");
  }
  if (!name) return say(byId("identity-result"), "Enter your name as it is written in the document.", "error");
  if (!documentText) return say(byId("identity-result"), "Enter the document's number or its machine-readable lines.", "error");
  const button = byId("identity-button");
  button.disabled = true;
  say(byId("identity-result"), "Checking…");
  try {
    identity = await ensureAccount();
    setBearer(identity.session);
    connectSocket();
    const result = await api("/api/identity", {
      method: "POST", body: { name, document_type: documentType, document: documentText },
    });
    setVerified(Boolean(result && result.verified));
    if (!(result && result.verified)) say(byId("identity-result"), "The identity could not be verified.", "error");
  } catch (error) {
    // One person, one account: these refusals are not a failed check of the document, and a
    // verified account stays verified (its identity is bound to it).
    if (error instanceof ApiError && BINDING_REFUSALS.includes(error.code)) {
      say(byId("identity-result"), errorWords(error), "error");
    } else {
      say(byId("identity-result"), `The identity check failed: ${errorWords(error)}`, "error");
    }
  } finally {
    button.disabled = false;
  }
}

let shown = null; // the registration on show: what the deposit confirmation names

function showRegistration(registration) {
  shown = registration;
  const lot = lotById(registration.lot);
  const deposit = registration.deposit || {};
  byId("bidder-code").textContent = `Your bidder code: ${registration.code}`;
  const lotLink = byId("lot-link");
  lotLink.replaceChildren(el("a", { href: `/lot/${encodeURIComponent(registration.lot)}` },
    `Go to the lot room of ${lot ? lot.title : registration.lot}`), " · ",
  el("a", { href: "/my" }, "My auctions"), " (your lots, bids and receipts, also from another browser)");
  const amount = Number.isSafeInteger(deposit.amount) ? deposit.amount : null;
  const currency = deposit.currency || (lot && lot.currency) || "CNY";
  const depositState = deposit.state || "REQUIRED";
  const button = byId("deposit-button");
  if (amount === null || amount === 0 || depositState === "NOT_REQUIRED" || depositState === "EXEMPT") {
    byId("deposit-info").textContent = "This lot needs no deposit.";
    button.disabled = true;
    say(byId("deposit-result"), "You can bid once the lot opens.", "ok");
    return;
  }
  byId("deposit-info").textContent = `Deposit: ${formatMoney(amount, currency)} (${amountWordings(amount, currency).join(" · ")}). It is frozen by the payment provider and released if you do not win.`;
  button.textContent = `Pay the deposit of ${formatMoney(amount, currency)}`;
  if (depositState === "FROZEN") {
    button.disabled = true;
    say(byId("deposit-result"), "Your deposit is frozen. You can bid.", "ok");
    stopPolling();
  } else if (depositState === "PENDING") {
    button.disabled = true;
    say(byId("deposit-result"), "The payment provider is freezing your deposit…");
    startPolling(registration.lot);
  } else if (depositState === "FAILED" || depositState === "REFUSED") {
    button.disabled = false;
    say(byId("deposit-result"), "The deposit was refused. Try again or use another payment method.", "error");
  } else {
    button.disabled = false;
    say(byId("deposit-result"), "");
  }
}

async function refreshRegistration(lot) {
  const account = await me();
  const registration = account && (account.registrations || []).find((r) => r.lot === lot);
  if (registration) showRegistration(registration);
  return registration || null;
}

async function register() {
  const lot = selectedLot();
  if (!lot) return say(byId("register-result"), "Choose a lot first.", "error");
  const button = byId("register-button");
  button.disabled = true;
  try {
    const registration = await api(`/api/lots/${encodeURIComponent(lot)}/registrations`, { method: "POST", body: {} });
    say(byId("register-result"), `You are registered for this lot. Your bidder code is ${registration.code}.`, "ok");
    showRegistration({ lot, ...registration });
  } catch (error) {
    if (error instanceof ApiError && error.code === "DUPLICATE" && (await refreshRegistration(lot))) {
      say(byId("register-result"), "You were already registered for this lot.", "ok");
    } else {
      say(byId("register-result"), `Registration failed: ${errorWords(error)}`, "error");
    }
  } finally {
    button.disabled = false;
  }
}

function depositKey(lot) {
  const storageKey = `gavel-deposit:${identity ? identity.account : ""}:${lot}`;
  let key = localStorage.getItem(storageKey);
  if (!key) {
    key = newIdempotencyKey("dep");
    localStorage.setItem(storageKey, key);
  }
  return key;
}

async function payDeposit() {
  const lot = selectedLot();
  const button = byId("deposit-button");
  const info = lotById(lot);
  const deposit = (shown && shown.lot === lot && shown.deposit) || {};
  button.disabled = true;
  const confirmed = await confirmDeposit(button, {
    lot, title: info ? info.title : lot, amount: deposit.amount, currency: deposit.currency || (info && info.currency) || "CNY",
    timeZone: info ? info.legal_timezone : "UTC",
  });
  if (!confirmed) {
    button.disabled = false;
    return;
  }
  say(byId("deposit-result"), "Asking the payment provider to freeze the deposit…");
  try {
    const result = await api(`/api/lots/${encodeURIComponent(lot)}/deposit`, {
      method: "POST", body: { idempotency_key: depositKey(lot) },
    });
    if (result && result.state === "FROZEN") {
      say(byId("deposit-result"), "Your deposit is frozen. You can bid.", "ok");
    } else {
      say(byId("deposit-result"), "The payment provider is freezing your deposit…");
      startPolling(lot);
    }
  } catch (error) {
    button.disabled = false;
    say(byId("deposit-result"), `The deposit failed: ${errorWords(error)}`, "error");
  }
}

function startPolling(lot) {
  stopPolling();
  polling = setInterval(() => refreshRegistration(lot).catch(() => {}), POLL_MS);
}

function stopPolling() {
  if (polling) clearInterval(polling);
  polling = null;
}

function connectSocket() {
  if (socket || !identity) return;
  socket = new GavelSocket({
    session: identity.session,
    onMessage(message) {
      if (message.type === "deposit" && message.lot === selectedLot()) refreshRegistration(message.lot);
    },
  });
  socket.connect();
}

async function loadLots() {
  const body = await api("/api/lots");
  lots = (body.lots || []).filter((lot) => ["SCHEDULED", "OPEN", "PAUSED"].includes(lot.status));
  const wanted = new URLSearchParams(location.search).get("lot");
  const select = byId("lot");
  select.replaceChildren(...lots.map((lot) => el("option", { value: lot.lot_id, selected: lot.lot_id === wanted },
    `${lot.title} (${lot.sale_title ? `${lot.sale_title}, ` : ""}${statusWords(lot).toLowerCase()})`)));
  if (!lots.length) select.append(el("option", { value: "" }, "No lot is open for registration"));
}

async function start() {
  byId("identity-form").addEventListener("submit", checkIdentity);
  byId("document-type").addEventListener("change", documentTypeChanged);
  byId("register-button").addEventListener("click", register);
  byId("deposit-button").addEventListener("click", payDeposit);
  byId("lot").addEventListener("change", () => {
    byId("bidder-code").textContent = "";
    byId("lot-link").textContent = "";
    byId("deposit-button").disabled = true;
    byId("deposit-info").textContent = "Register for this lot first.";
    say(byId("deposit-result"), "");
    stopPolling();
    if (identity) refreshRegistration(selectedLot()).catch(() => {});
  });
  documentTypeChanged();
  try {
    await loadLots();
  } catch (error) {
    say(byId("status"), `The lots could not be loaded: ${errorWords(error)}`, "error");
  }
  try {
    identity = await loadIdentity();
    if (identity && identity.expires_us && identity.expires_us < Date.now() * 1000) identity = null;
    if (identity) {
      setBearer(identity.session);
      const account = await me();
      if (account && account.verified) {
        setVerified(true);
        connectSocket();
        if (selectedLot()) await refreshRegistration(selectedLot());
      }
    }
  } catch (error) {
    say(byId("status"), errorWords(error), "error");
  }
}

start();
