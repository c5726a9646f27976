// The catalogue: lots grouped by sale, with state, price and a countdown by the server's
// clock; refreshed live over the websocket (watcher), with a REST poll as a fallback.

import { api, errorWords } from "./api.js";
import { cardFacts, loadFactsSummary } from "./cardfacts.js";
import { formatMoney } from "./money.js";
import {
  bidderWords, byId, countdownTarget, el, formatDuration, formatWords, overdueWords, say, serverNowOf, statusWords,
} from "./util.js";
import { loadWords } from "./words.js";
import { GavelSocket, ServerClock } from "./ws.js";

const clock = new ServerClock();
const lots = new Map();
let socket = null;

function lotCard(lot) {
  const link = el("a", { href: `/lot/${encodeURIComponent(lot.lot_id)}` }, lot.title || lot.lot_id);
  const card = el("article", { className: "card lot-card", dataset: { lot: lot.lot_id } });
  const tags = el("div", { className: "tags" },
    el("span", { className: `tag status-${lot.result === "SOLD" ? "SOLD" : lot.status}`, text: statusWords(lot) }),
    el("span", { className: "tag", text: formatWords(lot.format) }),
    el("span", { className: "tag", text: lot.currency }));
  const price = lot.price === null || lot.price === undefined
    ? el("p", { className: "price muted", text: `Starts at ${formatMoney(lot.start_price, lot.currency)}` })
    : el("p", { className: "price", text: formatMoney(lot.price, lot.currency) });
  const facts = el("dl", { className: "facts" });
  const fact = (label, value) => facts.append(el("dt", { text: label }), el("dd", { text: value }));
  if (lot.leader_code) fact(lot.result === "SOLD" ? "Winner" : "Leading", bidderWords(lot.leader_code));
  if (lot.status === "OPEN" || lot.status === "SCHEDULED") {
    fact(lot.format === "LIVE_AUCTIONEER" ? "Ask" : "Next bid", formatMoney(lot.min_next, lot.currency));
  }
  fact("Bids", String(lot.bids ?? 0));
  const target = countdownTarget(lot);
  const countdown = el("p", { className: "countdown", dataset: { target: target ? String(target[1]) : "" } });
  if (target) countdown.dataset.label = target[0];
  const [cover, about] = cardFacts(lot);
  card.append(cover || "", tags, el("h3", {}, link), price, facts, about || "", countdown,
    el("a", { href: `/lot/${encodeURIComponent(lot.lot_id)}`, "aria-label": `Open the lot room of ${lot.title || lot.lot_id}` }, "Lot room →"));
  return card;
}

const ACTIVE = new Set(["SCHEDULED", "OPEN", "PAUSED", "SUSPENDED"]);
const isActive = (lot) => ACTIVE.has(lot.status);
let olderResults = 0;

function render() {
  const container = byId("sales");
  const groups = new Map();
  for (const lot of lots.values()) {
    const key = lot.sale_id || "";
    if (!groups.has(key)) groups.set(key, { title: lot.sale_title || (lot.sale_id ? lot.sale_id : "Single lots"), lots: [] });
    groups.get(key).lots.push(lot);
  }
  const sections = [];
  // Sales with lots still to come or open first; in a sale, those lots by their end, then the
  // results, the newest first.
  const live = (group) => group.lots.some(isActive);
  const byKey = ([a, ga], [b, gb]) => (live(gb) - live(ga))
    || (a === "" ? 1 : b === "" ? -1 : a.localeCompare(b));
  for (const [key, group] of [...groups.entries()].sort(byKey)) {
    const heading = key
      ? el("h2", { id: `sale-${key}` }, el("a", { href: `/sale/${encodeURIComponent(key)}`, text: group.title }))
      : el("h2", { id: "sale-single", text: group.title });
    const grid = el("div", { className: "grid" });
    group.lots.sort((a, b) => (isActive(b) - isActive(a))
      || (isActive(a) ? (a.end ?? 0) - (b.end ?? 0) : (b.closed_at ?? 0) - (a.closed_at ?? 0))
      || a.lot_id.localeCompare(b.lot_id));
    for (const lot of group.lots) grid.append(lotCard(lot));
    sections.push(el("section", { "aria-labelledby": heading.id }, heading, grid));
  }
  if (!sections.length) sections.push(el("p", { className: "muted", text: "No lots yet." }));
  if (olderResults > 0) {
    const words = olderResults === 1 ? "1 older result is" : `${olderResults} older results are`;
    sections.push(el("p", { className: "muted", text: `${words} not listed here; every lot stays on the ledger.` }));
  }
  container.replaceChildren(...sections);
  tick();
}

function tick() {
  const now = clock.nowUs();
  for (const node of document.querySelectorAll(".countdown")) {
    const target = Number(node.dataset.target);
    if (!node.dataset.target || !Number.isFinite(target)) {
      node.textContent = "";
      continue;
    }
    const left = target - now;
    node.textContent = left > 0 ? `${node.dataset.label} ${formatDuration(left)}`
      : overdueWords(lots.get(node.closest("[data-lot]")?.dataset.lot) || {});
  }
}

async function load() {
  try {
    await Promise.all([loadWords(), loadFactsSummary()]);
    const t0 = Date.now();
    const body = await api("/api/lots");
    const serverNow = serverNowOf(body);
    if (serverNow !== null) clock.observe(t0, Date.now(), serverNow / 1000);
    const fresh = new Map();
    for (const lot of body.lots || []) fresh.set(lot.lot_id, lot);
    olderResults = body.older_results || 0;
    for (const id of [...lots.keys()]) if (!fresh.has(id)) lots.delete(id); // no longer listed
    const added = [...fresh.keys()].some((id) => !lots.has(id));
    for (const [id, lot] of fresh) {
      const known = lots.get(id);
      if (!known || (lot.seq ?? 0) >= (known.seq ?? 0)) lots.set(id, lot);
    }
    say(byId("status"), "");
    render();
    if (socket) for (const id of fresh.keys()) socket.subscribe(id);
    return added;
  } catch (error) {
    say(byId("status"), `The catalogue could not be loaded: ${errorWords(error)}`, "error");
    return false;
  }
}

function connect() {
  socket = new GavelSocket({
    clock,
    onMessage(message) {
      if ((message.type === "snapshot" || message.type === "update") && message.view) {
        const known = lots.get(message.lot);
        if (known && (message.view.seq ?? 0) >= (known.seq ?? 0)) { // listed lots only
          lots.set(message.lot, message.view);
          socket.applied(message.lot, message.seq);
          render();
        }
      }
    },
  });
  socket.connect();
  for (const id of lots.keys()) socket.subscribe(id);
}

await load();
connect();
setInterval(tick, 250);
setInterval(load, 10_000);
