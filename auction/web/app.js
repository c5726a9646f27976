// The lots page: polls GET /api/lots every second and renders every lot's public view.
// Countdowns use the server's clock (rules C15): offset = server_now - (t0 + t1) / 2, keeping
// the sample with the lowest round trip, refreshed every 30 s. All text goes in via textContent.

const POLL_MS = 1000;
const OFFSET_TTL_MS = 30_000;
const clock = { offsetUs: 0, rttUs: Infinity, takenAt: 0 };
let lots = [];

function serverNowUs() {
  return Date.now() * 1000 + clock.offsetUs;
}

function observeClock(t0, t1, serverNow) {
  const rtt = t1 - t0;
  const stale = Date.now() - clock.takenAt > OFFSET_TTL_MS;
  if (rtt <= clock.rttUs || stale) {
    clock.offsetUs = serverNow - (t0 + t1) / 2;
    clock.rttUs = rtt;
    clock.takenAt = Date.now();
  }
}

const FORMAT_NAMES = {
  JUDICIAL_CN: "Judicial sale (CN)",
  ENGLISH_TIMED: "Timed online",
  LIVE_AUCTIONEER: "Live auction",
};

const moneyFormats = new Map();
function money(minor, currency) {
  if (minor === null || minor === undefined) return null;
  let format = moneyFormats.get(currency);
  if (!format) {
    format = new Intl.NumberFormat(undefined, { style: "currency", currency });
    moneyFormats.set(currency, format);
  }
  const digits = format.resolvedOptions().maximumFractionDigits;
  return format.format(minor / 10 ** digits);
}

// A time in the lot's legal time zone, with the zone's name (rules C15).
function dateIn(us, timeZone) {
  return new Intl.DateTimeFormat(undefined, {
    timeZone, year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
  }).format(new Date(us / 1000));
}

function duration(us) {
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

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function row(list, label, value) {
  list.append(el("dt", null, label), el("dd", null, value));
  return list.lastChild;
}

// What the countdown of a lot shows: [label, target time in µs, text once it is due].
function countdownTarget(lot) {
  if (lot.status === "SCHEDULED" && lot.format !== "LIVE_AUCTIONEER") {
    return ["Opens in", lot.start_at, "opening…"];
  }
  if (lot.status !== "OPEN") return [null, null, null];
  if (lot.format === "LIVE_AUCTIONEER") {
    return lot.phase === "FAIR_WARNING"
      ? ["Hammer after", lot.hammer_not_before, "any moment"]
      : [null, null, null];
  }
  return ["Ends in", lot.end, "closing…"];
}

function statusLabel(lot) {
  if (lot.status === "OPEN" && lot.phase === "FAIR_WARNING") return ["FAIR_WARNING", "Fair warning"];
  if (lot.status === "OPEN" && lot.phase) return ["OPEN", "In the ring"];
  const words = { SCHEDULED: "Scheduled", OPEN: "Open", SOLD: "Sold", FAILED: "Not sold",
    PAUSED: "Paused", SUSPENDED: "Suspended", CANCELLED: "Cancelled", COMPLETED: "Completed",
    DEFAULTED: "Defaulted" };
  return [lot.status, words[lot.status] || lot.status];
}

function renderLot(lot) {
  const card = el("article", "lot");
  card.dataset.lot = lot.lot_id;
  const tags = el("div", "tags");
  const [statusClass, statusText] = statusLabel(lot);
  tags.append(el("span", `tag status ${statusClass}`, statusText));
  tags.append(el("span", "tag", FORMAT_NAMES[lot.format] || lot.format));
  tags.append(el("span", "tag", lot.currency));
  card.append(tags, el("h3", null, lot.title));

  const price = money(lot.price, lot.currency);
  const sold = lot.result === "SOLD";
  card.append(el("div", price ? "price" : "price none",
    price ? (sold ? `${price} · sold` : price) : `Starts at ${money(lot.start_price, lot.currency)}`));

  const facts = el("dl");
  if (lot.leader_code) row(facts, sold ? "Winner" : "Leading", lot.leader_code);
  if (lot.status === "OPEN" || lot.status === "SCHEDULED") {
    row(facts, lot.format === "LIVE_AUCTIONEER" ? "Ask" : "Next bid", money(lot.min_next, lot.currency));
  }
  if (lot.reserve_met !== null) row(facts, "Reserve", lot.reserve_met ? "met" : "not met");
  row(facts, "Bids", String(lot.bids));
  const [label, target, due] = countdownTarget(lot);
  if (label && target !== null) {
    const cell = row(facts, label, "");
    cell.className = "countdown";
    cell.dataset.target = String(target);
    cell.dataset.due = due;
  }
  if (lot.format !== "LIVE_AUCTIONEER") {
    const endLabel = lot.status === "OPEN" || lot.status === "SCHEDULED" ? "Closes" : "Closed";
    row(facts, endLabel, dateIn(lot.closed_at && endLabel === "Closed" ? lot.closed_at : lot.end,
      lot.legal_timezone));
  }
  card.append(facts);
  return card;
}

function render() {
  const main = document.getElementById("sales");
  if (!lots.length) {
    main.replaceChildren(el("p", "empty", "No lots yet."));
    return;
  }
  const sales = new Map();
  for (const lot of lots) {
    const key = lot.sale_id || "";
    if (!sales.has(key)) sales.set(key, { title: lot.sale_title || "Lots", lots: [] });
    sales.get(key).lots.push(lot);
  }
  const sections = [];
  for (const sale of sales.values()) {
    const section = el("section", "sale");
    const grid = el("div", "lots");
    grid.append(...sale.lots.map(renderLot));
    section.append(el("h2", null, sale.title), grid);
    sections.push(section);
  }
  main.replaceChildren(...sections);
  tick();
}

function tick() {
  const now = serverNowUs();
  document.getElementById("server-time").textContent = new Date(now / 1000).toISOString()
    .replace("T", " ").replace(/\.\d+Z$/, " UTC");
  const offsetMs = Math.round(clock.offsetUs / 1000);
  document.getElementById("offset").textContent =
    Number.isFinite(clock.rttUs) ? `(this device ${offsetMs >= 0 ? "is behind by" : "is ahead by"} ${Math.abs(offsetMs)} ms)` : "";
  for (const cell of document.querySelectorAll(".countdown[data-target]")) {
    const left = Number(cell.dataset.target) - now;
    cell.textContent = left > 0 ? duration(left) : cell.dataset.due;
    cell.classList.toggle("soon", left < 60_000_000);
  }
}

async function poll() {
  const banner = document.getElementById("banner");
  let body;
  try {
    const t0 = Date.now() * 1000;
    const response = await fetch("/api/lots", { cache: "no-store" });
    const t1 = Date.now() * 1000;
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    body = await response.json();
    observeClock(t0, t1, body.now);
  } catch (error) {
    banner.textContent = `Lost contact with the server (${error.message}); retrying…`;
    banner.hidden = false;
    return;
  }
  banner.hidden = true;
  lots = body.lots;
  render();
}

poll();
setInterval(poll, POLL_MS);
setInterval(tick, 250);
