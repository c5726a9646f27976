// The lot room: live price and leader, countdown by server time with a soft-close banner,
// bid history and price chart, two-step bid confirmation with the amount in words, proxy
// maximum, and for each accepted bid its receipt (download and in-browser verification).

import { api, ApiError, errorWords, setBearer, wordsFor } from "./api.js";
import { startBidBar } from "./bidbar.js";
import { checkBid, parseBidText } from "./bidguard.js";
import { loadIdentity, newIdempotencyKey, signBid } from "./keys.js";
import { amountInputText, amountWordings, formatMoney } from "./money.js";
import { startFacts } from "./lotfacts.js";
import {
  biddingEndedWords, endedAt, endedWords, lotEnded, relistedAs, relistedNodes, resultWords, videoEndedWords,
} from "./lotresult.js";
import { describeResult, verifyServedReceipt } from "./receipt.js";
import { installRing } from "./ring.js";
import {
  bidderWords, byId, countdownTarget, depositWords, el, formatDuration, formatTime, formatWords, lotIdFromLocation,
  overdueWords, say, serverNowOf, statusWords,
} from "./util.js";
import { loadWords } from "./words.js";
import { startWitness } from "./witness.js";
import { GavelSocket, ServerClock } from "./ws.js";
import { mountMine } from "./mine.js";

const RECEIPT_RETRY_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";

const lotId = lotIdFromLocation();
const clock = new ServerClock();
const state = {
  view: null,
  identity: null,
  registration: null,
  history: new Map(), // seq → {seq, t, code, amount, bid_type}
  myBids: new Map(), // idempotency_key → {kind, amount, currency, result, entry, node, ...}
  hadAccepted: false,
  lastEnd: null,
  pendingConfirm: null,
  socket: null,
  terms: null, // the lot's terms of sale (step, deposit) from its facts
  jumpAsked: null, // the amount of a large jump already warned about once
  player: null, // the live video's connection (player.js), once attached
  relistAsked: false, // whether the sale was asked for the lot offering this one again
  sawOpen: false, // whether this page showed the lot open (then saw it close)
};

let videoStarted = false; // startVideo() runs once the view and the socket are in

// The room's state, readable from the browser's console when something looks wrong.
window.gavelLot = state;
// The live ring (ring.js): held online bids, their outcome, the fair-warning banner.
const ring = installRing({ state, renderMyBid, renderMyState, fetchReceipt });
// "Your lot" (mine.js): the bidder's state on this lot as the server keeps it.
let mine = { onMessage() {}, refresh() {} };

function onMineSummary(summary) {
  if (summary.bids.some((bid) => bid.result === "accepted")) state.hadAccepted = true;
  if (!state.myBids.size && summary.bids.length) {
    byId("my-bids-empty").textContent = "Bids sent before this page was opened are listed under “Your lot”.";
  }
  renderMyState();
}

function currency() {
  return state.view ? state.view.currency : "USD";
}

// ---------------------------------------------------------------- rendering the view

function renderView() {
  const view = state.view;
  if (!view) return;
  document.title = `Gavel · ${view.title || view.lot_id}`;
  byId("title").textContent = view.title || view.lot_id;
  const rest = [formatWords(view.format), view.currency].filter(Boolean).join(" · ");
  const subtitle = byId("subtitle");
  if (view.sale_id) {
    subtitle.replaceChildren(
      el("a", { href: `/sale/${encodeURIComponent(view.sale_id)}`, id: "sale-link", text: view.sale_title || view.sale_id }),
      ` · ${rest}`);
  } else {
    subtitle.textContent = rest;
  }
  if (lotEnded(view)) {
    renderEnded(view);
    return;
  }
  state.sawOpen = true;
  if (byId("bid-bar").dataset.ended === "1") renderReopened();
  const fixed = view.format === "FIXED_PRICE_SALE";
  byId("price-heading").textContent = fixed ? "Fixed price" : "Current price";
  byId("bid-heading").textContent = fixed ? "Buy" : "Bid";
  byId("price").textContent = fixed
    ? formatMoney(view.start_price, view.currency)
    : view.price === null || view.price === undefined
      ? `Starts at ${formatMoney(view.start_price, view.currency)}`
      : formatMoney(view.price, view.currency);
  const sold = view.result === "SOLD";
  byId("leader").textContent = fixed
    ? (view.leader_code ? `Purchase confirmed by ${bidderWords(view.leader_code)}; a priority holder may still match it.`
      : "Nobody has bought it yet.")
    : view.leader_code
      ? `${sold ? "Winning" : "Leading"} bidder: ${bidderWords(view.leader_code)}`
      : "No leading bidder yet.";
  byId("state").textContent = statusWords(view);
  const live = view.format === "LIVE_AUCTIONEER";
  byId("next-label").textContent = live ? "Ask" : "Next bid";
  byId("next-label").hidden = byId("next").hidden = fixed;
  byId("next").textContent = view.status === "OPEN" || view.status === "SCHEDULED"
    ? formatMoney(view.min_next, view.currency) : "—";
  byId("bid-count").textContent = String(view.bids ?? 0);
  const end = view.end ?? view.end_us;
  byId("end-time").textContent = live || !end ? "When the auctioneer hammers" : formatTime(end, view.legal_timezone);
  byId("bid-amount-label").textContent = fixed ? `The fixed price (${view.currency})` : `Your bid (${view.currency})`;
  const amountInput = byId("bid-amount");
  amountInput.readOnly = fixed; // a fixed-price sale is bought at exactly its price
  if (fixed) {
    amountInput.value = amountInputText(view.start_price, view.currency);
    amountInput.dataset.auto = "1";
  } else if (!amountInput.value || amountInput.dataset.auto === "1") {
    amountInput.value = amountInputText(view.min_next, view.currency);
    amountInput.dataset.auto = "1";
  }
  const proxyAllowed = view.proxy_allowed ?? view.format === "ENGLISH_TIMED";
  byId("max-form").hidden = !proxyAllowed;
  updateBidButton();
  renderMyState();
  tick();
}

/** A lot open again after it was shown closed (a live lot's hammer undone): the form back. */
function renderReopened() {
  delete byId("bid-bar").dataset.ended;
  byId("price").classList.remove("result");
  byId("leader").hidden = false;
  for (const id of ["next-label", "next", "bid-form", "countdown"]) byId(id).hidden = false;
  byId("end-label").textContent = "Ends";
  byId("bid-ended").hidden = true;
  byId("bar-bid").hidden = false;
  byId("history-empty").textContent = "No bids yet.";
  loadRegistration();
}

/** A closed lot: the price card is the result, the bid form one line saying when bidding
 *  ended, the phone's bar the result; the receipts stay (a bidder may need theirs). */
function renderEnded(view) {
  byId("price-heading").textContent = "Result";
  byId("price").textContent = resultWords(view);
  byId("price").classList.add("result");
  byId("leader").hidden = true;
  for (const id of ["next-label", "next"]) byId(id).hidden = true;
  byId("state").textContent = statusWords(view); // "Sold and paid", "Sold, but the winner did not pay", …
  byId("bid-count").textContent = String(view.bids ?? 0);
  byId("end-label").textContent = "Ended";
  byId("end-time").textContent = endedAt(view) === null ? "—" : formatTime(endedAt(view), view.legal_timezone);
  byId("countdown").hidden = true; // it still feeds the phone's bar: the result, then this
  byId("extension").hidden = true;
  for (const id of ["bid-form", "max-form", "confirm", "register-note", "bid-message"]) byId(id).hidden = true;
  state.pendingConfirm = null;
  const ended = byId("bid-ended");
  ended.textContent = biddingEndedWords(view);
  ended.hidden = false;
  byId("bid-bar").dataset.ended = "1";
  byId("bar-bid").hidden = true;
  byId("history-empty").textContent = "No bid was made.";
  renderMyState();
  tick();
  if (!state.relistAsked) {
    state.relistAsked = true;
    // A lot seen closing here may be relisted in the minutes after: ask again a few times.
    askRelisted(view, state.sawOpen ? RELIST_RETRIES : 0);
  }
}

const RELIST_RETRIES = 4;
const RELIST_RETRY_MS = 15_000;

function askRelisted(view, retries) {
  relistedAs(view).then((next) => {
    if (next) {
      byId("relisted").replaceChildren(...relistedNodes(next));
      byId("relisted").hidden = false;
    } else if (retries > 0 && !["SOLD", "COMPLETED"].includes(view.status)) {
      setTimeout(() => askRelisted(state.view, retries - 1), RELIST_RETRY_MS);
    }
  });
}

function noteEndMove(before, after) {
  if (!Number.isFinite(before) || !Number.isFinite(after) || after <= before) return;
  const banner = byId("extension");
  const added = Math.round((after - before) / 1e6);
  banner.textContent = `Extended: a late bid moved the end by ${added} s, to ${formatTime(after, state.view ? state.view.legal_timezone : "UTC")}.`;
  banner.hidden = false;
}

function applyView(view) {
  if (state.view && (view.seq ?? 0) < (state.view.seq ?? 0)) return;
  const before = state.lastEnd;
  const after = view.end ?? view.end_us;
  if (before !== null && view.status === "OPEN" && view.format !== "LIVE_AUCTIONEER") noteEndMove(before, after);
  state.lastEnd = after;
  const previous = state.view;
  state.view = view;
  renderView();
  ring.onView(view);
  if (videoStarted) videoOnView(previous, view);
}

function renderMyState() {
  const node = byId("my-state");
  const view = state.view;
  const code = state.registration && state.registration.code;
  if (!view || !code) {
    node.textContent = "";
    node.className = "";
    return;
  }
  const over = view.status !== "OPEN" && view.status !== "SCHEDULED" && view.status !== "PAUSED";
  if (view.leader_code === code) {
    node.textContent = over && view.result === "SOLD" ? "You won this lot." : "You are leading.";
    node.className = "leading";
  } else if (state.hadAccepted) {
    node.textContent = over ? "You did not win this lot." : "You have been outbid.";
    node.className = "outbid";
  } else {
    node.textContent = `Your bidder code on this lot is ${code}.`;
    node.className = "";
  }
}

function tick() {
  const node = byId("countdown");
  const view = state.view;
  if (lotEnded(view)) {
    // The phone's bar mirrors this line: the time the lot ended, under its result.
    node.textContent = endedWords(view);
    return;
  }
  const target = view && countdownTarget(view);
  if (!target || !Number.isFinite(target[1])) {
    node.textContent = "";
    return;
  }
  const left = target[1] - clock.nowUs();
  node.textContent = left > 0 ? `${target[0]} ${formatDuration(left)}` : overdueWords(view);
}

// ---------------------------------------------------------------- history and chart

function bidTime(item) {
  return item.t ?? item.t_us ?? item.time_us ?? item.at ?? null;
}

function addHistory(item) {
  if (!Number.isFinite(item.amount)) return;
  const key = item.seq ?? `${bidTime(item)}-${item.amount}-${item.code}`;
  state.history.set(key, {
    seq: item.seq ?? null, t: bidTime(item), code: item.code ?? item.paddle ?? "—", amount: item.amount,
    bid_type: item.bid_type ?? item.type_name ?? item.kind ?? "",
  });
}

const BID_TYPE_WORDS = { MANUAL: "bid", PROXY: "proxy", FLOOR: "floor", AUTO: "proxy", PHONE: "phone" };

/** "22:42:38.512" in the lot's time zone (the full date is in the cell's title). */
function clockTime(us, timeZone) {
  try {
    return new Intl.DateTimeFormat("en-GB", {
      timeZone, hour: "2-digit", minute: "2-digit", second: "2-digit", fractionalSecondDigits: 1,
    }).format(new Date(us / 1000));
  } catch {
    return new Date(us / 1000).toISOString().slice(11, 21);
  }
}

function renderHistory() {
  const rows = [...state.history.values()].sort((a, b) => (b.t ?? 0) - (a.t ?? 0) || (b.seq ?? 0) - (a.seq ?? 0));
  const body = byId("history");
  const zone = state.view ? state.view.legal_timezone : "UTC";
  body.replaceChildren(...rows.map((item) => el("tr", {},
    el("td", { title: item.t ? formatTime(item.t, zone) : null, text: item.t ? clockTime(item.t, zone) : "—" }),
    el("td", { text: bidderWords(item.code) }),
    el("td", { className: "amount", text: formatMoney(item.amount, currency()) }),
    el("td", { text: BID_TYPE_WORDS[item.bid_type] || "bid" }))));
  byId("history-empty").hidden = rows.length > 0;
  byId("chart-section").hidden = rows.length === 0; // no bids: nothing to draw
  byId("history").closest(".table-wrap").hidden = rows.length === 0;
  renderChart(rows.slice().reverse());
}

function svg(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

function renderChart(points) {
  const chart = byId("chart");
  const timed = points.filter((p) => Number.isFinite(p.t));
  if (!timed.length) {
    chart.replaceChildren();
    chart.setAttribute("aria-label", "Price over time: no bids yet");
    return;
  }
  const width = 600;
  const height = 260;
  const pad = { left: 10, right: 10, top: 40, bottom: 40 };
  const t0 = timed[0].t;
  const t1 = Math.max(timed[timed.length - 1].t, t0 + 1);
  const low = Math.min(...timed.map((p) => p.amount));
  const high = Math.max(...timed.map((p) => p.amount));
  const span = Math.max(high - low, 1);
  const x = (t) => pad.left + ((t - t0) / (t1 - t0)) * (width - pad.left - pad.right);
  const y = (a) => height - pad.bottom - ((a - low) / span) * (height - pad.top - pad.bottom);
  let path = "";
  timed.forEach((p, i) => {
    // A step chart: the price holds until the next bid.
    path += i === 0 ? `M${x(p.t).toFixed(1)},${y(p.amount).toFixed(1)}`
      : ` H${x(p.t).toFixed(1)} V${y(p.amount).toFixed(1)}`;
  });
  const nodes = [
    svg("line", { x1: pad.left, y1: height - pad.bottom, x2: width - pad.right, y2: height - pad.bottom, stroke: "#8c959f" }),
    svg("path", { d: path, fill: "none", stroke: "#0b5cad", "stroke-width": 2.5 }),
    ...timed.map((p) => svg("circle", { cx: x(p.t).toFixed(1), cy: y(p.amount).toFixed(1), r: 3.5, fill: "#0b5cad" })),
  ];
  const highLabel = svg("text", { x: pad.left, y: 28, "font-size": 24, fill: "#59636e" });
  highLabel.textContent = formatMoney(high, currency());
  const lowLabel = svg("text", { x: pad.left, y: height - 10, "font-size": 24, fill: "#59636e" });
  lowLabel.textContent = formatMoney(low, currency());
  nodes.push(highLabel, lowLabel);
  chart.replaceChildren(...nodes);
  chart.setAttribute("aria-label",
    `Price over time: ${timed.length} bid${timed.length === 1 ? "" : "s"}, from ${formatMoney(low, currency())} to ${formatMoney(high, currency())}`);
}

async function loadHistory() {
  try {
    const body = await api(`/api/lots/${encodeURIComponent(lotId)}/bids`);
    const items = Array.isArray(body) ? body : (body && (body.bids || body.history)) || [];
    for (const item of items) addHistory(item);
    renderHistory();
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) {
      say(byId("status"), `The bid history could not be loaded: ${errorWords(error)}`, "error");
    }
  }
}

// ---------------------------------------------------------------- bidding

function updateBidButton() {
  const button = byId("bid-button");
  try {
    const amount = parseBidText(byId("bid-amount").value, currency());
    button.textContent = state.view && state.view.format === "FIXED_PRICE_SALE"
      ? `Buy at ${formatMoney(amount, currency())}` : `Bid ${formatMoney(amount, currency())}`;
    byId("bid-words").textContent = amountWordings(amount, currency()).join(" · ");
  } catch {
    button.textContent = "Bid (enter an amount)";
    byId("bid-words").textContent = "";
  }
  const view = state.view;
  const biddable = !view || ["OPEN", "SCHEDULED", "PAUSED", "SUSPENDED"].includes(view.status);
  const canBid = Boolean(state.identity && state.socket && biddable);
  if (view && !biddable) button.textContent = "Bid (bidding has ended)";
  button.disabled = !canBid;
  byId("max-button").disabled = !canBid;
}

function askToConfirm(kind, inputId) {
  // Stop what can only fail before anything is signed (bidguard.js); ask again for a jump.
  const verdict = checkBid({
    kind, text: byId(inputId).value, view: state.view, registration: state.registration,
    terms: state.terms, currency: currency(),
  });
  if (verdict.block) {
    say(byId("bid-message"), verdict.block, "error");
    return;
  }
  if (verdict.jump && state.jumpAsked !== verdict.amount) {
    state.jumpAsked = verdict.amount;
    say(byId("bid-message"), verdict.jump, "warn");
    return;
  }
  state.jumpAsked = null;
  const amount = verdict.amount;
  state.pendingConfirm = { kind, amount, currency: currency() };
  const fixed = state.view && state.view.format === "FIXED_PRICE_SALE";
  byId("confirm-what").textContent = kind === "max"
    ? "Confirm your proxy maximum" : fixed ? "Confirm your purchase" : "Confirm your bid";
  byId("confirm-amount").textContent = formatMoney(amount, currency());
  byId("confirm-words").textContent = amountWordings(amount, currency()).join(" · ");
  const confirmButton = byId("confirm-button");
  confirmButton.textContent = kind === "max"
    ? `Confirm proxy maximum of ${formatMoney(amount, currency())}`
    : fixed ? `Confirm purchase at ${formatMoney(amount, currency())}`
      : `Confirm bid of ${formatMoney(amount, currency())}`;
  byId("confirm").hidden = false;
  say(byId("bid-message"), "");
  confirmButton.focus();
}

function cancelConfirm() {
  state.pendingConfirm = null;
  byId("confirm").hidden = true;
  byId("bid-button").focus();
}

async function sendConfirmed() {
  const pending = state.pendingConfirm;
  if (!pending || !state.identity) return;
  state.pendingConfirm = null;
  byId("confirm").hidden = true;
  const request = {
    lot: lotId, kind: pending.kind, amount: pending.amount, currency: pending.currency,
    idempotency_key: newIdempotencyKey(pending.kind === "max" ? "m" : "b"),
  };
  let message;
  try {
    message = await signBid(state.identity.keyPair.privateKey, state.identity.account, request);
  } catch (error) {
    say(byId("bid-message"), `The bid could not be signed: ${errorWords(error)}`, "error");
    return;
  }
  const record = { ...request, result: "sent", entry: null, receipt: null };
  state.myBids.set(request.idempotency_key, record);
  renderMyBid(record);
  say(byId("bid-message"), `Sending your ${pending.kind === "max" ? "proxy maximum" : "bid"} of ${formatMoney(pending.amount, pending.currency)}…`);
  state.socket.bid(message);
  byId("bid-amount").dataset.auto = "1";
}

function onAck(ack) {
  const record = state.myBids.get(ack.idempotency_key);
  if (!record) return;
  record.result = ack.result;
  record.entry = Number.isSafeInteger(ack.entry) ? ack.entry : null;
  if (ring.onAck(record, ack)) return;
  const what = record.kind === "max" ? "proxy maximum" : "bid";
  if (ack.result === "accepted") {
    state.hadAccepted = true;
    say(byId("bid-message"), `Your ${what} of ${formatMoney(record.amount, record.currency)} was accepted.`, "ok");
    if (ack.leader_is_you && state.view && state.registration) {
      // The update with the new view follows; show the leading state at once.
      state.view = { ...state.view, leader_code: state.registration.code };
    }
  } else {
    record.reason = wordsFor(ack.reason, ack.message);
    say(byId("bid-message"), `Your ${what} was refused: ${record.reason}`, "error");
  }
  renderMyBid(record);
  renderMyState();
  if (ack.result === "accepted" && record.entry !== null) fetchReceipt(record);
}

function renderMyBid(record) {
  byId("my-bids-empty").hidden = true;
  if (!record.node) {
    record.node = el("li", { dataset: { key: record.idempotency_key } });
    byId("my-bids").prepend(record.node);
  }
  if (ring.renderBid(record)) return;
  const amount = formatMoney(record.amount, record.currency);
  const kind = record.kind === "max" ? "Proxy maximum" : "Bid";
  const parts = [];
  if (record.result === "sent") parts.push(el("span", { text: `${kind} ${amount}: waiting for the server…` }));
  else if (record.result === "rejected") {
    parts.push(el("span", { "data-kind": "error", text: `${kind} ${amount}: refused. ${record.reason}` }));
  } else {
    if (record.entry === null) {
      parts.push(el("span", { text: `${kind} ${amount}: accepted. ` }),
        el("span", { className: "receipt-state", text: "No receipt: the server did not say which ledger entry records this bid." }));
      record.node.replaceChildren(...parts);
      return;
    }
    parts.push(el("span", { text: `${kind} ${amount}: accepted, ledger entry ${record.entry}. ` }));
    const receiptState = el("span", { className: "receipt-state", text: record.receipt ? "Receipt ready." : (record.receiptWords || "Receipt pending…") });
    parts.push(receiptState);
    if (record.receipt) {
      const blob = new Blob([JSON.stringify(record.receipt, null, 2) + "\n"], { type: "application/json" });
      if (record.url) URL.revokeObjectURL(record.url);
      record.url = URL.createObjectURL(blob);
      parts.push(el("div", { className: "row" },
        el("a", { href: record.url, download: `receipt-${record.entry}.json`, className: "download",
          "aria-label": `Download the receipt of ledger entry ${record.entry}` }, "Download receipt"),
        (() => {
          const button = el("button", { type: "button", className: "secondary verify",
            "aria-label": `Verify the receipt of ledger entry ${record.entry}` }, "Verify");
          button.addEventListener("click", () => verify(record));
          return button;
        })()));
      if (record.verifyWords) {
        parts.push(el("p", { className: "verify-result", role: "status", "data-kind": record.verified ? "ok" : "error", text: record.verifyWords }));
      }
    }
  }
  record.node.replaceChildren(...parts);
}

async function fetchReceipt(record) {
  try {
    record.receipt = await api(`/log/receipt/${record.entry}`);
    record.receiptWords = null;
    renderMyBid(record);
    return;
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 503)) {
      record.receiptWords = "Receipt pending: the notaries have not yet co-signed a checkpoint that covers this bid. Retrying…";
    } else {
      record.receiptWords = `The receipt could not be fetched: ${errorWords(error)} Retrying…`;
    }
    renderMyBid(record);
  }
  setTimeout(() => fetchReceipt(record), RECEIPT_RETRY_MS);
}

async function verify(record) {
  record.verifyWords = "Verifying…";
  record.verified = false;
  renderMyBid(record);
  try {
    const policy = await api("/log/policy", { text: true });
    const result = await verifyServedReceipt(record.receipt, policy);
    record.verified = true;
    record.verifyWords = describeResult(result);
  } catch (error) {
    record.verified = false;
    record.verifyWords = error.step ? describeResult(error) : `Verification failed: ${errorWords(error)}`;
  }
  renderMyBid(record);
}

// ---------------------------------------------------------------- websocket

function onMessage(message) {
  mine.onMessage(message);
  if (message.lot && message.lot !== lotId && message.type !== "ack") return;
  if (message.type === "snapshot" && message.view) {
    applyView(message.view);
    state.socket.applied(lotId, message.seq ?? message.view.seq);
    if (message.replayed === false) loadHistory();
  } else if (message.type === "update" && message.view) {
    for (const event of message.events || []) {
      if (event.type === "BidAccepted") addHistory(event);
      if (event.type === "EndExtended") noteEndMove(event.end_before, event.end_after);
    }
    applyView(message.view);
    ring.onEvents(message.events || []);
    state.socket.applied(lotId, message.seq ?? message.view.seq);
    if (message.gap) loadHistory();
    else renderHistory();
  } else if (message.type === "ack") {
    onAck(message);
  } else if (message.type === "deposit") {
    loadRegistration();
  } else if (message.type === "error") {
    say(byId("status"), wordsFor(message.code, message.message), "error");
  }
}

function onStatus(connection, words) {
  if (connection === "open") say(byId("status"), "");
  else if (connection === "closed" || connection === "reconnecting") say(byId("status"), words, connection === "closed" ? "error" : "warn");
}

// ---------------------------------------------------------------- video

/** The video area of a closed lot: no stream is asked for (it stops when the lot closes). */
function showVideoEnded() {
  const video = byId("video");
  const note = byId("video-note");
  if (state.player) {
    state.player.close();
    state.player = null;
  }
  video.hidden = true;
  note.hidden = false;
  note.textContent = videoEndedWords(state.view);
  byId("video-box").classList.add("ended");
  byId("video-behind").textContent = "";
}

const VIDEO_TAIL_MS = 8000; // longer than the server's tail (auction/video close_tail_seconds)

/** The lot closed while the page is open: the picture keeps its final state until the server
 *  ends the stream (a few seconds); without a picture the area says so at once. */
function videoOnView(before, view) {
  if (lotEnded(view) && !state.player) showVideoEnded();
  else if (lotEnded(view) && before && !lotEnded(before)) {
    // Whether or not the browser notices the stream's end, the area says so after the tail.
    setTimeout(() => {
      if (lotEnded(state.view)) showVideoEnded();
    }, VIDEO_TAIL_MS);
  } else if (before && lotEnded(before) && !lotEnded(view) && !state.player) startVideo();
  else if (videoWaiting && view.status !== "SCHEDULED" && !state.player) startVideo();
}

let videoWaiting = false; // a scheduled lot: the video is asked for once the lot opens

function showVideoSoon() {
  const note = byId("video-note");
  byId("video").hidden = true;
  note.hidden = false;
  const live = state.view && state.view.format === "LIVE_AUCTIONEER";
  note.textContent = live ? "The live video starts when the auctioneer opens this lot." : "The video starts when bidding opens.";
}

async function startVideo() {
  const video = byId("video");
  const note = byId("video-note");
  if (lotEnded(state.view)) {
    showVideoEnded();
    return;
  }
  videoWaiting = Boolean(state.view && state.view.status === "SCHEDULED");
  if (videoWaiting) {
    showVideoSoon(); // no stream before the lot opens: asked for again when it does
    return;
  }
  const noVideo = () => {
    video.hidden = true;
    note.hidden = false;
    note.textContent = "No live video for this lot.";
  };
  try {
    const player = await import("/stream/static/player.js");
    const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error("timeout")), 20_000));
    const handle = await Promise.race([player.attachStream(video, lotId, {
      serverOffsetMs: () => clock.offsetMs,
      onBehind: (seconds) => {
        byId("video-behind").textContent = seconds >= 1 ? `The video is ${Math.round(seconds)} s behind the auction.` : "";
      },
    }), timeout]);
    if (lotEnded(state.view)) {
      if (handle) handle.close();
      showVideoEnded();
      return;
    }
    state.player = handle || null;
    if (handle && handle.pc) {
      handle.pc.addEventListener("connectionstatechange", () => {
        const gone = ["failed", "closed", "disconnected"].includes(handle.pc.connectionState);
        if (gone && lotEnded(state.view) && state.player === handle) showVideoEnded();
      });
    }
    byId("video-box").classList.remove("ended");
    video.hidden = false;
    note.hidden = true;
  } catch (error) {
    if (lotEnded(state.view)) {
      showVideoEnded();
      return;
    }
    if (error && error.status === 409) {
      // The lot streams, but not yet: try again while the page is open.
      showVideoSoon();
      setTimeout(startVideo, 3000);
      return;
    }
    noVideo();
  }
}

// ---------------------------------------------------------------- start

async function loadRegistration() {
  if (!state.identity) return;
  try {
    const me = await api("/api/me");
    const registrations = (me && me.registrations) || [];
    state.registration = registrations.find((r) => r.lot === lotId) || null;
  } catch (error) {
    state.registration = null;
  }
  const note = byId("register-note");
  const deposit = state.registration && state.registration.deposit;
  if (lotEnded(state.view)) {
    note.hidden = true; // bidding is over: "Bidding ended on …" says so instead
  } else if (!state.registration) {
    note.replaceChildren("To bid, ", el("a", { href: `/register?lot=${encodeURIComponent(lotId)}` }, "register for this lot"), " and pay its deposit.");
    note.hidden = false;
  } else if (deposit && deposit.amount !== 0 && !["FROZEN", "EXEMPT", "APPLIED_TO_PRICE"].includes(deposit.state)) {
    note.replaceChildren(`Your bidder code is ${state.registration.code}. ${depositWords(deposit.state)}: `,
      el("a", { href: `/register?lot=${encodeURIComponent(lotId)}` }, `pay the deposit of ${formatMoney(deposit.amount, deposit.currency || currency())}`), " to bid.");
    note.hidden = false;
  } else {
    note.textContent = `Your bidder code is ${state.registration.code}.`;
    note.hidden = false;
  }
  renderMyState();
}

async function start() {
  if (!lotId) {
    say(byId("status"), "No lot was named in the address.", "error");
    return;
  }
  byId("bid-form").addEventListener("submit", (event) => {
    event.preventDefault();
    askToConfirm("bid", "bid-amount");
  });
  byId("max-form").addEventListener("submit", (event) => {
    event.preventDefault();
    askToConfirm("max", "max-amount");
  });
  byId("bid-amount").addEventListener("input", () => {
    byId("bid-amount").dataset.auto = "0";
    updateBidButton();
  });
  byId("confirm-button").addEventListener("click", sendConfirmed);
  startBidBar();
  loadWords().then(renderView);
  startFacts(lotId).then((facts) => {
    state.terms = facts ? facts.terms : null;
  });
  byId("cancel-button").addEventListener("click", cancelConfirm);
  startWitness({ banner: byId("witness-banner"), status: byId("witness-status") });

  try {
    state.identity = await loadIdentity();
  } catch {
    state.identity = null;
  }
  if (state.identity && state.identity.expires_us && state.identity.expires_us < Date.now() * 1000) state.identity = null;
  if (state.identity) setBearer(state.identity.session);
  try {
    const t0 = Date.now();
    const body = await api(`/api/lots/${encodeURIComponent(lotId)}`);
    const serverNow = serverNowOf(body);
    if (serverNow !== null) clock.observe(t0, Date.now(), serverNow / 1000);
    applyView(body && body.lot_id ? body : body.lot);
  } catch (error) {
    say(byId("status"), error instanceof ApiError && error.status === 404
      ? "There is no such lot." : `The lot could not be loaded: ${errorWords(error)}`, "error");
    return;
  }
  await Promise.all([loadHistory(), loadRegistration()]);
  state.socket = new GavelSocket({
    session: state.identity ? state.identity.session : null, clock, onMessage, onStatus,
  });
  state.socket.subscribe(lotId);
  state.socket.connect();
  mountMine({ lotId, anchor: byId("bid-section"), onSummary: onMineSummary }).then((handle) => { mine = handle; });
  if (!state.identity && !lotEnded(state.view)) {
    const buy = state.view && state.view.format === "FIXED_PRICE_SALE";
    say(byId("bid-message"), `You are watching. Register to ${buy ? "buy" : "bid"}.`);
  }
  updateBidButton();
  setInterval(tick, 200);
  videoStarted = true;
  startVideo();
}

start();
