// The live ring, the bidder's side (rules C14): an online bid the auctioneer has not taken
// yet is "with the auctioneer" (ack result "held"), never refused; the room then follows the
// lot's public events to say whether the auctioneer accepted it (BidAccepted) or declined it
// (BidDeclined), and flashes a banner while the auctioneer gives fair warning.
// lot.js calls the hooks returned by installRing().

import { formatMoney } from "./money.js";
import { byId, el, say } from "./util.js";

const WAITING = "held";

/**
 * Wire the ring into the lot room. `room` gives the room's state and its renderers:
 * { state, renderMyBid(record), renderMyState(), fetchReceipt(record) }.
 */
export function installRing(room) {
  const { state } = room;
  const banner = fairWarningBanner();
  const zoneNote = el("p", { id: "zone-note", className: "muted" });
  const facts = document.querySelector("#price-heading ~ dl.facts");
  if (facts) facts.after(zoneNote);

  function money(record) {
    return formatMoney(record.amount, record.currency);
  }

  function waiting() {
    return [...state.myBids.values()].filter((record) => record.result === WAITING);
  }

  function settle(record, result, words, kind) {
    record.result = result;
    record.ringWords = words;
    say(byId("bid-message"), words, kind);
    room.renderMyBid(record);
    room.renderMyState();
  }

  /** The ack of a bid: true when the ring handled it (the bid is with the auctioneer). */
  function onAck(record, ack) {
    const earlier = waiting().find((other) => other !== record);
    if (ack.result === "rejected" && ack.reason === "ASK_TAKEN" && earlier) {
      // Our own held bid holds the ask: say so rather than "the ask was taken".
      record.result = "rejected";
      record.reason = `Your bid of ${money(earlier)} is already with the auctioneer, waiting for a decision.`;
      say(byId("bid-message"), `Not sent to the auctioneer: ${record.reason}`, "warn");
      room.renderMyBid(record);
      return true;
    }
    if (ack.result !== WAITING) return false;
    record.result = WAITING;
    record.bidSeq = Number.isSafeInteger(ack.bid_seq) ? ack.bid_seq : null;
    record.ringWords = `Your bid of ${money(record)} is with the auctioneer, waiting to be accepted.`;
    say(byId("bid-message"), record.ringWords, "info");
    room.renderMyBid(record);
    room.renderMyState();
    return true;
  }

  /** The public events of an update: accept, decline or withdrawal of a bid of ours. */
  function onEvents(events) {
    const code = state.registration && state.registration.code;
    for (const event of events) {
      for (const record of waiting()) {
        if (event.type === "BidAccepted" && event.bid_type === "ONLINE" && event.code === code
          && event.amount === record.amount) {
          state.hadAccepted = true;
          settle(record, "accepted",
            `Accepted: your bid of ${money(record)} is the highest bid. You are the highest bidder.`, "ok");
          if (record.entry !== null && room.fetchReceipt) room.fetchReceipt(record);
        } else if (event.type === "BidDeclined" && event.bid_seq === record.bidSeq) {
          const words = event.reason === "DECLINED"
            ? `The auctioneer declined your bid of ${money(record)}. You may bid again at the ask.`
            : `Your bid of ${money(record)} was not taken: a bid in the room took the ask first.`;
          settle(record, "declined", words, "error");
        } else if (event.type === "BidVoided") {
          settle(record, "declined",
            `The auctioneer undid the last bid; your bid of ${money(record)} was not taken. You may bid again.`, "error");
        } else if (event.type === "LotClosed") {
          settle(record, "declined",
            `The lot ended before the auctioneer took your bid of ${money(record)}.`, "error");
        }
      }
    }
  }

  /** Every new view: the fair-warning banner while the auctioneer is about to sell. */
  function onView(view) {
    if (view && view.legal_timezone) {
      zoneNote.textContent = `Times on this page are server times, shown in ${view.legal_timezone} time, the lot's legal time zone.`;
    }
    const warning = view && view.format === "LIVE_AUCTIONEER" && view.status === "OPEN"
      && view.phase === "FAIR_WARNING";
    if (!warning) {
      banner.hidden = true;
      banner.classList.remove("flash");
      return;
    }
    banner.textContent = `Fair warning: the auctioneer is about to sell at ${formatMoney(view.price ?? view.min_next, view.currency)}. Bid ${formatMoney(view.min_next, view.currency)} now if you want it.`;
    if (banner.hidden) {
      banner.hidden = false;
      banner.classList.remove("flash");
      void banner.offsetWidth; // restart the animation on each new warning
      banner.classList.add("flash");
    }
  }

  /** A line of "Your bids" for a ring outcome; false for the room's own renderings. */
  function renderBid(record) {
    if (record.result !== WAITING && record.result !== "declined") return false;
    const amount = money(record);
    const text = record.result === WAITING
      ? `Bid ${amount}: with the auctioneer${record.entry !== null ? ` (ledger entry ${record.entry})` : ""}.`
      : `Bid ${amount}: not taken. ${record.ringWords || ""}`;
    record.node.replaceChildren(el("span", { "data-kind": record.result === WAITING ? "info" : "error", text }));
    return true;
  }

  return { onAck, onEvents, onView, renderBid };
}

function fairWarningBanner() {
  const banner = el("p", { id: "fair-warning", className: "banner fair-warning", role: "alert", hidden: true });
  const anchor = byId("extension");
  if (anchor) anchor.after(banner);
  else document.querySelector("main").prepend(banner);
  return banner;
}
