// The live ring, the auctioneer's side (rules C14): the online bids held for the auctioneer
// (bidder code, amount, time) with Accept and Decline; the lot's registered bidders and their
// deposits in words; the lot's own live video (the lot room's player); a confirmation before
// the hammer; live controls only for live lots; times in the lot's legal time zone, named.
// console.js calls the hooks returned by installConsoleRing().

import { api, errorWords } from "./api.js";
import { formatMoney } from "./money.js";
import { bidderWords, byId, el, say } from "./util.js";

const DEPOSIT_WORDS = {
  REQUIRED: "deposit not paid yet",
  PENDING: "deposit payment in progress",
  FROZEN: "deposit held",
  EXEMPT: "no deposit needed",
  APPLIED_TO_PRICE: "deposit applied to the price",
  RELEASED: "deposit returned",
  FORFEITED: "deposit forfeited",
};

// The legal time zones the console offers, and the one each currency suggests.
const ZONES = ["Asia/Shanghai", "Asia/Hong_Kong", "Asia/Singapore", "Asia/Tokyo", "Europe/London",
  "Europe/Paris", "Europe/Berlin", "America/New_York", "America/Chicago", "America/Los_Angeles", "UTC"];
const ZONE_OF_CURRENCY = { CNY: "Asia/Shanghai", USD: "America/New_York", EUR: "Europe/Paris", GBP: "Europe/London" };

/** "7 Dec 2026, 19:00:05 Asia/Shanghai time": a server time in a named zone. */
export function zoneTime(us, timeZone) {
  const zone = timeZone || "UTC";
  try {
    const text = new Intl.DateTimeFormat("en-GB", {
      timeZone: zone, year: "numeric", month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    }).format(new Date(us / 1000));
    return `${text} ${zone} time`;
  } catch {
    return `${new Date(us / 1000).toISOString()} (UTC)`;
  }
}

/**
 * Wire the ring into the console. `host` gives:
 * { selectedLot(), selectedView(), setView(view), log(words, kind) }.
 */
export function installConsoleRing(host) {
  const parts = buildDom();
  let shownLot = null;
  let player = null;
  let videoLot = null;
  let refreshTimer = null;

  function base() {
    return `/api/console/lots/${encodeURIComponent(host.selectedLot())}`;
  }

  async function refresh() {
    const view = host.selectedView();
    if (!view) return;
    const lot = view.lot_id;
    try {
      const [held, bidders] = await Promise.all([
        view.format === "LIVE_AUCTIONEER" ? api(`${base()}/held`) : Promise.resolve(null),
        api(`${base()}/bidders`),
      ]);
      if (lot !== host.selectedLot()) return;
      if (held) renderHeld(held, view);
      renderBidders(bidders, view);
    } catch (error) {
      say(parts.heldResult, `The waiting bids could not be loaded: ${errorWords(error)}`, "error");
    }
  }

  function refreshSoon() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, 50);
  }

  function renderHeld(body, view) {
    const rows = body.held.map((bid) => {
      const amount = formatMoney(bid.amount, body.currency);
      const accept = el("button", { type: "button", "aria-label": `Accept ${bid.code}'s bid of ${amount}` }, "Accept");
      const decline = el("button", { type: "button", className: "secondary", "aria-label": `Decline ${bid.code}'s bid of ${amount}` }, "Decline");
      accept.addEventListener("click", () => decide(bid, "accept", amount, [accept, decline]));
      decline.addEventListener("click", () => decide(bid, "decline", amount, [accept, decline]));
      return el("tr", { dataset: { bidSeq: String(bid.bid_seq) } },
        el("td", { text: bid.code }),
        el("td", { className: "amount", text: amount }),
        el("td", { text: zoneTime(bid.t_us, body.legal_timezone || view.legal_timezone) }),
        el("td", {}, el("div", { className: "held-actions" }, accept, decline)));
    });
    parts.heldBody.replaceChildren(...rows);
    parts.heldEmpty.hidden = rows.length > 0;
    parts.heldTable.hidden = rows.length === 0;
  }

  async function decide(bid, verb, amount, buttons) {
    for (const button of buttons) button.disabled = true;
    const lot = host.selectedLot();
    try {
      const answer = await api(`${base()}/held/${bid.bid_seq}/${verb}`, { method: "POST", body: {} });
      if (answer && answer.lot) host.setView(answer.lot);
      const words = verb === "accept"
        ? `Accepted ${bid.code}'s online bid of ${amount}: they are the highest bidder.`
        : `Declined ${bid.code}'s online bid of ${amount}; the bidder is told, and the ask is free again.`;
      say(parts.heldResult, words, "ok");
      host.log(`${lot}: ${words}`, "ok");
    } catch (error) {
      say(parts.heldResult, `${verb === "accept" ? "Accept" : "Decline"} failed: ${errorWords(error)}`, "error");
      host.log(`${lot}: ${verb} failed — ${errorWords(error)}`, "error");
    }
    refreshSoon();
  }

  function renderBidders(body, view) {
    const rows = (body.bidders || []).map((bidder) => {
      const words = DEPOSIT_WORDS[bidder.deposit.state] || "deposit state unknown";
      const amount = bidder.deposit.amount ? ` (${formatMoney(bidder.deposit.amount, bidder.deposit.currency)})` : "";
      return el("tr", {},
        el("td", { text: bidder.code }),
        el("td", { text: `${words}${bidder.deposit.state === "EXEMPT" ? "" : amount}${bidder.barred ? "; barred from this lot" : ""}` }));
    });
    parts.biddersBody.replaceChildren(...rows);
    parts.biddersEmpty.hidden = rows.length > 0;
    parts.biddersTable.hidden = rows.length === 0;
    parts.biddersHeading.textContent = `Registered bidders on this lot: ${rows.length}`;
    void view;
  }

  async function showVideo(view) {
    const live = view && view.format === "LIVE_AUCTIONEER";
    const lot = live ? view.lot_id : null;
    const onAir = live && view.status === "OPEN";
    if (lot === videoLot && (player || !onAir)) return;
    if (player) player.close();
    player = null;
    videoLot = lot;
    parts.videoBox.hidden = !live;
    parts.video.hidden = true;
    parts.videoNote.hidden = false;
    if (!live) return;
    if (!onAir) {
      parts.videoNote.textContent = "The live video starts when you open the ring.";
      return;
    }
    parts.videoNote.textContent = "Connecting to the lot's live video…";
    try {
      const stream = await import("/stream/static/player.js");
      const attached = await stream.attachStream(parts.video, lot, {});
      if (videoLot !== lot) {
        attached.close();
        return;
      }
      player = attached;
      parts.video.hidden = false;
      parts.videoNote.hidden = true;
    } catch (error) {
      if (videoLot === lot) parts.videoNote.textContent = `No live video for this lot now: ${errorWords(error)}`;
      videoLot = null; // try again on the next update
    }
  }

  /** The selected lot's view changed (or another lot was selected). */
  function onView(view) {
    const live = Boolean(view && view.format === "LIVE_AUCTIONEER");
    parts.ringSection.hidden = Boolean(view) && !live;
    parts.heldSection.hidden = !live;
    parts.times.textContent = view ? timesWords(view) : "";
    if (!view || view.status !== "OPEN" || view.phase !== "FAIR_WARNING") cancelHammer();
    showVideo(view);
    if (!view) return;
    if (view.lot_id !== shownLot) {
      shownLot = view.lot_id;
      say(parts.heldResult, "");
      parts.heldBody.replaceChildren();
    }
    refreshSoon();
  }

  /** Two steps to the hammer: it sells the lot. Calls `go()` once confirmed. */
  function confirmHammer(go) {
    const view = host.selectedView();
    if (!view) return go();
    const price = view.price === null || view.price === undefined ? "no bid" : formatMoney(view.price, view.currency);
    parts.hammerWords.textContent = view.leader_code
      ? `Sell “${view.title}” to ${view.leader_code.startsWith("floor:") ? "" : "bidder "}${bidderWords(view.leader_code)} for ${price}? This cannot be undone once you move to the next lot.`
      : `Hammer “${view.title}”? There is no accepted bid, so the hammer will be refused: pass the lot instead.`;
    parts.hammerConfirm.textContent = view.leader_code ? `Confirm: sell for ${price}` : "Hammer anyway";
    parts.hammerGo = go;
    parts.hammer.hidden = false;
    parts.hammerConfirm.focus();
  }

  function cancelHammer() {
    parts.hammer.hidden = true;
    parts.hammerGo = null;
  }

  parts.hammerConfirm.addEventListener("click", () => {
    const go = parts.hammerGo;
    cancelHammer();
    if (go) go();
  });
  parts.hammerCancel.addEventListener("click", cancelHammer);

  /** The legal time zone to create a lot with (follows the currency until chosen). */
  function timeZone() {
    return parts.zone.value;
  }

  return { onView, onUpdate: refreshSoon, confirmHammer, timeZone };
}

function timesWords(view) {
  const zone = view.legal_timezone || "UTC";
  const start = Number.isFinite(view.start_at) ? `starts ${zoneTime(view.start_at, zone)}` : null;
  const end = view.format !== "LIVE_AUCTIONEER" && Number.isFinite(view.end) ? `ends ${zoneTime(view.end, zone)}` : null;
  const closed = Number.isFinite(view.closed_at) ? `closed ${zoneTime(view.closed_at, zone)}` : null;
  return `Times of this lot are in its legal time zone, ${zone}: ${[start, end, closed].filter(Boolean).join("; ")}.`;
}

function buildDom() {
  const ringSection = byId("ring-heading").closest("section");
  const controlSection = byId("control-heading").closest("section");

  // Times, video and bidders of the selected lot, under its facts.
  const times = el("p", { id: "lot-times", className: "muted" });
  const video = el("video", { id: "console-video", muted: true, playsinline: true, autoplay: true,
    "aria-label": "Live video of the lot", hidden: true });
  video.muted = true;
  const videoNote = el("p", { id: "console-video-note" });
  const videoBox = el("div", { className: "video-box", id: "console-video-box", hidden: true }, video, videoNote);
  const biddersHeading = el("h3", { id: "bidders-heading" }, "Registered bidders on this lot");
  const biddersBody = el("tbody", { id: "bidders" });
  const biddersTable = el("div", { className: "table-wrap" }, el("table", { className: "compact", "aria-labelledby": "bidders-heading" },
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Bidder"), el("th", { scope: "col" }, "Deposit"))), biddersBody));
  const biddersEmpty = el("p", { className: "muted" }, "No bidder has registered yet.");
  byId("live").after(times, videoBox, biddersHeading, biddersTable, biddersEmpty);

  // The queue of held online bids, at the top of the live controls.
  const heldBody = el("tbody", { id: "held-bids" });
  const heldTable = el("div", { className: "table-wrap", hidden: true }, el("table", { className: "compact", "aria-labelledby": "held-heading" },
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Bidder"), el("th", { scope: "col" }, "Amount"),
      el("th", { scope: "col" }, "Received"), el("th", { scope: "col" }, "Decision"))), heldBody));
  const heldEmpty = el("p", { className: "muted", id: "held-empty" }, "No online bid is waiting.");
  const heldResult = el("p", { id: "held-result", "aria-live": "polite" }); // not role=status: console.js finds the ring's own result by it
  const heldSection = el("div", { id: "held-section" },
    el("h3", { id: "held-heading" }, "Online bids waiting for you"),
    el("p", { className: "muted" }, "The first online bid at the ask holds it until you accept or decline it; the bidder sees your decision."),
    heldTable, heldEmpty, heldResult);
  byId("ring-heading").after(heldSection);

  // The hammer's confirmation, next to the ring's result line.
  const hammerWords = el("p", { id: "hammer-words" });
  const hammerConfirm = el("button", { type: "button", id: "hammer-confirm" }, "Confirm hammer");
  const hammerCancel = el("button", { type: "button", className: "secondary", id: "hammer-cancel" }, "Keep the lot open");
  const hammer = el("div", { className: "confirm", id: "hammer-confirmation", role: "group", "aria-labelledby": "hammer-words", hidden: true },
    hammerWords, el("div", { className: "row" }, hammerConfirm, hammerCancel));
  byId("ring-result").before(hammer);

  // The legal time zone of a new lot, in the create form.
  const zone = el("select", { id: "create-zone" }, ...ZONES.map((name) => el("option", { value: name }, name)));
  const currency = byId("create-currency");
  const follow = () => {
    if (zone.dataset.chosen !== "1") zone.value = ZONE_OF_CURRENCY[currency.value] || "UTC";
  };
  zone.addEventListener("change", () => {
    zone.dataset.chosen = "1";
  });
  currency.addEventListener("change", follow);
  byId("preset").addEventListener("change", () => setTimeout(follow));
  follow();
  byId("create-start").closest(".row").append(
    el("div", {}, el("label", { for: "create-zone" }, "Legal time zone (times are shown in it)"), zone));

  return {
    ringSection, controlSection, times, video, videoNote, videoBox, biddersHeading, biddersBody, biddersTable,
    biddersEmpty, heldBody, heldTable, heldEmpty, heldResult, heldSection, hammer, hammerWords,
    hammerConfirm, hammerCancel, hammerGo: null, zone,
  };
}
