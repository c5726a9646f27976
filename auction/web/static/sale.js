// A sale's page for bidders (GET /api/sales/{sale}): its lots in catalogue order with their
// state, price and close, each linked to its lot page; relisted lots name the lot they follow;
// the sale's notice with its SHA-256 and ledger entry.

import { api, errorWords } from "./api.js";
import { formatMoney } from "./money.js";
import { byId, el, formatTime, formatWords, say, statusWords } from "./util.js";
import { loadWords } from "./words.js";

const SALE_WORDS = {
  scheduled: "Scheduled; the notice is not published yet",
  published: "Notice published",
  paused: "Paused",
  cancelled: "Cancelled",
  closed: "Closed",
};

function saleId() {
  const parts = location.pathname.split("/").filter(Boolean);
  return decodeURIComponent(parts[parts.length - 1] || "");
}

function lotRow(lot, titles) {
  const cell = el("td", {}, el("a", { href: `/lot/${encodeURIComponent(lot.lot_id)}`, text: lot.title }));
  if (lot.relists) cell.append(el("div", { className: "muted", text: `Relisting of ${titles.get(lot.relists) || lot.relists}` }));
  if (lot.relisted_as) cell.append(el("div", { className: "muted", text: `Relisted as ${titles.get(lot.relisted_as) || lot.relisted_as}` }));
  const zone = lot.legal_timezone || "UTC";
  const closes = formatTime(lot.closed_at || lot.end, zone);
  return el("tr", { dataset: { lot: lot.lot_id } },
    cell,
    el("td", { "data-label": "State", text: `${statusWords(lot)} · ${formatWords(lot.format)}` }),
    el("td", { className: "amount", "data-label": "Start price", text: formatMoney(lot.start_price, lot.currency) }),
    el("td", { className: "amount", "data-label": "Price", text: lot.price === null ? "no bid" : formatMoney(lot.price, lot.currency) }),
    el("td", { "data-label": lot.closed_at ? "Closed" : "Closes", text: closes }));
}

async function load() {
  const body = await api(`/api/sales/${encodeURIComponent(saleId())}`);
  const sale = body.sale;
  document.title = `Gavel · ${sale.title}`;
  byId("title").textContent = sale.title;
  const count = sale.lots.length === 1 ? "1 lot" : `${sale.lots.length} lots`;
  const words = [SALE_WORDS[sale.status] || sale.status, count];
  if (sale.reason && (sale.status === "paused" || sale.status === "cancelled")) words.push(`Reason: ${sale.reason}`);
  byId("subtitle").textContent = words.join(" · ");
  const titles = new Map(sale.lots.map((lot) => [lot.lot_id, lot.title]));
  byId("lots").replaceChildren(...sale.lots.map((lot) => lotRow(lot, titles)));
  if (sale.notice) {
    byId("notice").textContent = sale.notice;
    byId("notice-proof").replaceChildren(`Recorded in ledger entry ${sale.notice_entry}; SHA-256 `,
      el("code", { className: "mono", text: sale.notice_sha256 }));
  } else {
    byId("notice-proof").textContent = "The notice of this sale is not published yet.";
  }
}

loadWords().catch(() => {}).finally(() => {
  load().catch((error) => say(byId("status"), errorWords(error), "error"));
  setInterval(() => load().catch(() => {}), 5000);
});
