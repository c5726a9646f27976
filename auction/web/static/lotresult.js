// What the lot room says once a lot is closed: its result in plain words (who bought it and
// for how much, or why it was not sold), when bidding ended (server time, in the lot's legal
// time zone), the video's last words, and where the lot is offered again after a relisting.
// Everything here reads the public lot view (`auction/service/views.py` LotView) only.

import { api } from "./api.js";
import { formatMoney } from "./money.js";
import { el, formatTime } from "./util.js";

/** Statuses in which a lot can still take bids (`ACTIVE_STATUSES` of the server's views). */
export const ACTIVE_STATUSES = ["SCHEDULED", "OPEN", "PAUSED", "SUSPENDED"];

const SOLD_STATUSES = ["SOLD", "COMPLETED", "DEFAULTED"];

/** Whether bidding on the lot is over for good (sold, not sold, withdrawn, paid, defaulted). */
export function lotEnded(view) {
  return Boolean(view && view.status) && !ACTIVE_STATUSES.includes(view.status);
}

function fixedPrice(view) {
  return view.format === "FIXED_PRICE_SALE";
}

/** "bidder BBA6-7BBA", or "paddle 12 in the room" for a bidder in the sale room. */
function buyerWords(code) {
  return code.startsWith("floor:") ? `paddle ${code.slice(6)} in the room` : `bidder ${code}`;
}

/** The result as one sentence: "Sold for £290,000.00 to bidder BBA6-7BBA." or why not sold. */
export function resultWords(view) {
  const money = (amount) => formatMoney(amount, view.currency);
  if (view.status === "CANCELLED") return "Withdrawn from sale: the lot was not sold.";
  const sold = view.result === "SOLD" || SOLD_STATUSES.includes(view.status);
  if (sold && Number.isSafeInteger(view.price)) {
    const to = view.leader_code ? ` to ${buyerWords(view.leader_code)}` : "";
    const by = view.leader_code ? ` by ${buyerWords(view.leader_code)}` : "";
    const base = fixedPrice(view)
      ? `Bought${by} at the fixed price of ${money(view.price)}`
      : `Sold for ${money(view.price)}${to}`;
    if (view.status === "COMPLETED") return `${base}; the buyer has paid.`;
    if (view.status === "DEFAULTED") return `${base}, but the buyer did not pay.`;
    return `${base}.`;
  }
  if (fixedPrice(view)) {
    return `Not sold: nobody bought it at the fixed price of ${money(view.start_price)}.`;
  }
  const live = view.format === "LIVE_AUCTIONEER";
  if (!view.bids || !Number.isSafeInteger(view.price)) {
    return live ? "Not sold: no bid was made, so the auctioneer passed the lot." : "Not sold: no bid was made.";
  }
  if (view.reserve_met === false) {
    return `Not sold: the highest bid, ${money(view.price)}, did not reach the reserve price.`;
  }
  if (live) {
    return `Not sold: the auctioneer passed the lot; the last bid was ${money(view.price)}.`;
  }
  return `Not sold: the highest bid was ${money(view.price)}.`;
}

/** When the lot closed (server µs): its close, else its end. Null when not known. */
export function endedAt(view) {
  const at = view.closed_at ?? null;
  return Number.isFinite(at) ? at : null;
}

/** "Ended 8 Dec 2026, 01:12:49 (Europe/London)." (the price card and the phone's bar). */
export function endedWords(view) {
  const at = endedAt(view);
  return at === null ? "Ended." : `Ended ${formatTime(at, view.legal_timezone)}.`;
}

/** The one line that replaces the bid form: "Bidding ended on <time>." */
export function biddingEndedWords(view) {
  const at = endedAt(view);
  const what = fixedPrice(view) ? "The sale ended" : "Bidding ended";
  return at === null ? `${what}.` : `${what} on ${formatTime(at, view.legal_timezone)}.`;
}

/** What the video area says once the lot is closed (no stream is asked for then). */
export function videoEndedWords(view) {
  return fixedPrice(view)
    ? "The sale has ended, so there is no live video."
    : "The auction has ended, so there is no live video.";
}

/** The new lot offering a lot again after a relisting, from its sale (`GET /api/sales`,
 *  `GET /api/sales/{sale}`: `relisted_as`), or null: {lot_id, title, ...its view}. */
export async function relistedAs(view) {
  if (!view.sale_id || view.status === "SOLD" || view.status === "COMPLETED") return null;
  try {
    // The list first: a sale the console did not make (a demo's own) has no page to ask for.
    const listed = await api("/api/sales");
    const sale = (listed.sales || []).find((item) => item.sale === view.sale_id);
    if (!sale || !(sale.lots || []).includes(view.lot_id)) return null;
    const body = await api(`/api/sales/${encodeURIComponent(view.sale_id)}`);
    const lots = (body.sale && body.sale.lots) || [];
    const mine = lots.find((lot) => lot.lot_id === view.lot_id);
    if (!mine || !mine.relisted_as) return null;
    return lots.find((lot) => lot.lot_id === mine.relisted_as) || { lot_id: mine.relisted_as, title: mine.relisted_as };
  } catch {
    return null; // the link is a help, not the result: the page stands without it
  }
}

/** "Offered again as <link>, starting at CN¥1,208,000." (the nodes of the line). */
export function relistedNodes(next) {
  const link = el("a", { href: `/lot/${encodeURIComponent(next.lot_id)}`, id: "relisted-link" }, next.title || next.lot_id);
  const parts = ["Offered again as ", link];
  if (Number.isSafeInteger(next.start_price) && next.currency) {
    const price = formatMoney(next.start_price, next.currency);
    parts.push(next.format === "FIXED_PRICE_SALE" ? `, at the fixed price of ${price}` : `, starting at ${price}`);
    if (Number.isFinite(next.start_at) && next.status === "SCHEDULED") {
      parts.push(` from ${formatTime(next.start_at, next.legal_timezone)}`);
    }
  }
  parts.push(".");
  return parts;
}
