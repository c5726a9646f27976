// Small DOM and time helpers shared by the pages. All text goes in through textContent.

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "className") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

export function byId(id) {
  return document.getElementById(id);
}

/** Show `words` in a status element (role=status or alert set in the HTML). */
export function say(element, words, kind = "info") {
  element.textContent = words || "";
  element.dataset.kind = kind;
  element.hidden = !words;
}

/** "1d 2h 03:04", "2:03:04" or "03:04" for a duration in µs (never negative). */
export function formatDuration(us) {
  const total = Math.max(0, Math.floor(us / 1_000_000));
  const days = Math.floor(total / 86400);
  const hours = Math.floor((total % 86400) / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  const clock = `${String(minutes).padStart(2, "0")}:${String(seconds).padStart(2, "0")}`;
  if (days) return `${days}d ${hours}h ${clock}`;
  if (hours) return `${hours}:${clock}`;
  return clock;
}

/** A server time (µs) in the lot's legal time zone, with the zone's name, as the server
 *  writes it (`auction/words.py`): "8 Dec 2026, 01:12:49 (Asia/Shanghai)". */
export function formatTime(us, timeZone = "UTC") {
  try {
    const text = new Intl.DateTimeFormat("en-GB", {
      timeZone, year: "numeric", month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    }).format(new Date(us / 1000));
    return `${text} (${timeZone})`;
  } catch {
    return new Date(us / 1000).toISOString();
  }
}

// The words for formats and states. The server's `auction/words.py` is the source: these
// copies are replaced by `GET /api/words` (words.js) and a test keeps them equal to it.
export const FORMAT_NAMES = {
  JUDICIAL_CN: "Judicial sale (China)",
  ENGLISH_TIMED: "Timed online auction",
  LIVE_AUCTIONEER: "Live auction",
  FIXED_PRICE_SALE: "Fixed-price sale (after two failed auctions)",
};

const STATUS_WORDS = {
  SCHEDULED: "Scheduled", OPEN: "Open", PAUSED: "Paused", SUSPENDED: "Suspended", SOLD: "Sold",
  FAILED: "Not sold", CANCELLED: "Cancelled", COMPLETED: "Sold and paid",
  DEFAULTED: "Sold, but the winner did not pay",
};

const PHASE_WORDS = { IN_RING: "In the ring", FAIR_WARNING: "Fair warning" };

const DEPOSIT_WORDS = {
  REQUIRED: "Deposit not paid yet",
  PENDING: "Deposit being frozen by the payment provider",
  FROZEN: "Deposit paid and frozen: you can bid",
  EXEMPT: "No deposit needed from you",
  APPLIED_TO_PRICE: "Deposit counted towards the price",
  RELEASED: "Deposit returned",
  FORFEITED: "Deposit forfeited",
};

/** The tables this page shows, for a test comparing them with the server's. */
export function wordTables() {
  return { lot_states: STATUS_WORDS, phases: PHASE_WORDS, deposit_states: DEPOSIT_WORDS, formats: FORMAT_NAMES };
}

/** Take the server's words (`GET /api/words`) over the copies above. */
export function setWordTables(tables) {
  if (!tables) return;
  Object.assign(STATUS_WORDS, tables.lot_states || {});
  Object.assign(PHASE_WORDS, tables.phases || {});
  Object.assign(DEPOSIT_WORDS, tables.deposit_states || {});
  Object.assign(FORMAT_NAMES, tables.formats || {});
}

export function formatWords(format) {
  return FORMAT_NAMES[format] || "Auction";
}

export function depositWords(state) {
  return DEPOSIT_WORDS[state] || "Deposit state not known";
}

/** A bidder's code as a person reads it: a bidder in the sale room (`floor:<paddle>`) by paddle. */
export function bidderWords(code) {
  if (!code) return "";
  return code.startsWith("floor:") ? `paddle ${code.slice(6)} in the room` : code;
}

export function statusWords(lot) {
  if (lot.status === "OPEN" && PHASE_WORDS[lot.phase]) return PHASE_WORDS[lot.phase];
  if (lot.result === "SOLD" && lot.status !== "COMPLETED" && lot.status !== "DEFAULTED") return STATUS_WORDS.SOLD;
  return STATUS_WORDS[lot.status] || "State not known";
}

/** What the countdown of a lot shows: [label, target µs] or null. */
export function countdownTarget(lot) {
  if (lot.status === "SCHEDULED") {
    return [lot.format === "LIVE_AUCTIONEER" ? "Comes up in the ring in about" : "Opens in", lot.start_at];
  }
  if (lot.status !== "OPEN") return null;
  if (lot.format === "LIVE_AUCTIONEER") {
    return lot.phase === "FAIR_WARNING" && lot.hammer_not_before ? ["Hammer after", lot.hammer_not_before] : null;
  }
  return ["Ends in", lot.end ?? lot.end_us];
}

/** What a countdown shows once its time has come: a lot about to close or to open. */
export function overdueWords(lot) {
  return lot.status === "SCHEDULED" ? "Opening…" : "Closing…";
}

/** The lot id from /lot/{id} or ?lot=. */
export function lotIdFromLocation() {
  const match = /^\/lot\/([^/]+)\/?$/.exec(location.pathname);
  if (match) return decodeURIComponent(match[1]);
  return new URLSearchParams(location.search).get("lot");
}

/** Server "now" from a REST body ({now_us} per protocol, {now} from older servers). */
export function serverNowOf(body) {
  const value = body && (body.now_us ?? body.now);
  return Number.isFinite(value) ? value : null;
}
