// The console's sales: create a sale with its lots (POST /api/console/sales), publish its
// notice, pause, resume, cancel and close it, and relist a failed lot (a judicial lot's second
// failure: its fixed-price sale). A lot's facts and documents are entered in the "Lot facts
// and documents" section (consolefacts.js) once the lot is chosen there.

import { api, errorWords, setBearer } from "./api.js";
import { amountInputText, formatMoney, parseAmount } from "./money.js";
import { byId, el, formatTime, formatWords, say, statusWords } from "./util.js";

const TOKEN_KEY = "gavel-console-token";
const MINUTE_US = 60_000_000;
const HOUR_US = 60 * MINUTE_US;
const DAY_US = 24 * HOUR_US;
const SALE_WORDS = {
  scheduled: "scheduled, notice not published yet", published: "notice published", paused: "paused",
  cancelled: "cancelled", closed: "closed",
};
const ACTION_WORDS = { pause: "Paused", resume: "Resumed", cancel: "Cancelled", close: "Closed" };

let serverNowUs = null;
let current = null; // the chosen sale's JSON
let relisting = null; // the lot being relisted

function token() {
  return new URLSearchParams(location.hash.slice(1)).get("token") || sessionStorage.getItem(TOKEN_KEY);
}

function call(path, options = {}) {
  return api(path, { ...options, token: token() });
}

function now() {
  return serverNowUs ?? Date.now() * 1000;
}

function slug(title) {
  const base = title.toLowerCase().normalize("NFKD").replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 40);
  return `${base || "sale"}-${Math.random().toString(36).slice(2, 6)}`;
}

function addLotRow() {
  const n = byId("sale-lots").children.length + 1;
  const field = (label, className, attributes = {}) => {
    const id = `sale-lot-${n}-${className}`;
    return el("div", {}, el("label", { for: id, text: label }),
      el("input", { type: "text", id, className: `sale-lot-${className}`, ...attributes }));
  };
  const row = el("div", { className: "sale-lot-row", dataset: { n: String(n) } },
    field(`Lot ${n}: title`, "title"),
    field("Opening price", "price", { inputmode: "decimal" }),
    field("Bid step", "step", { inputmode: "decimal" }));
  byId("sale-lots").append(row);
  presetChanged();
}

function presetChanged() {
  const judicial = byId("sale-preset").value === "JUDICIAL_CN";
  for (const input of document.querySelectorAll(".sale-lot-step")) input.parentElement.hidden = !judicial;
  byId("sale-shortest-field").hidden = !judicial;
  byId("sale-round-field").hidden = !judicial;
  if (judicial) byId("sale-currency").value = "CNY";
}

async function createSale(event) {
  event.preventDefault();
  const result = byId("sale-result");
  const title = byId("sale-title").value.trim();
  if (!title) return say(result, "Give the sale a title.", "error");
  const preset = byId("sale-preset").value;
  const currency = byId("sale-currency").value;
  const saleId = byId("sale-id").value.trim() || slug(title);
  const lots = [];
  try {
    for (const row of byId("sale-lots").children) {
      const lotTitle = row.querySelector(".sale-lot-title").value.trim();
      if (!lotTitle) continue;
      const price = parseAmount(row.querySelector(".sale-lot-price").value, currency);
      const step = preset === "JUDICIAL_CN" ? parseAmount(row.querySelector(".sale-lot-step").value, currency) : 1;
      lots.push({ lot: `${saleId}-${lots.length + 1}`, title: lotTitle, start_price: price, step });
    }
  } catch (error) {
    return say(result, errorWords(error), "error");
  }
  if (!lots.length) return say(result, "Give at least one lot a title and an opening price.", "error");
  const startMinutes = Number(byId("sale-start").value);
  const duration = Number(byId("sale-duration").value);
  const gap = Number(byId("sale-gap").value);
  if (!(startMinutes > 0) || !(duration > 0) || !(gap >= 0)) {
    return say(result, "Enter when the sale opens and how long its first lot runs (minutes), and the gap between closes (seconds).", "error");
  }
  await refreshNow();
  const startAt = Math.round(now() + startMinutes * MINUTE_US);
  const body = {
    sale: saleId, title, preset, currency, lots,
    start_at: startAt,
    first_end: Math.round(startAt + duration * MINUTE_US),
    interval_us: Math.round(gap * 1_000_000),
  };
  if (preset === "JUDICIAL_CN") {
    body.min_duration_us = Math.round(Number(byId("sale-shortest").value) * MINUTE_US);
    body.round = Number(byId("sale-round").value);
  }
  try {
    const made = await call("/api/console/sales", { method: "POST", body });
    say(result, `Created the sale ${title} with ${made.sale.lots.length} lots (ledger entry ${made.entry}). Add each lot's facts and documents, then publish the notice.`, "ok");
    await loadSales(saleId);
  } catch (error) {
    say(result, `The sale could not be created: ${errorWords(error)}`, "error");
  }
}

async function refreshNow() {
  try {
    const body = await call("/api/sales");
    serverNowUs = body.now_us;
    return body;
  } catch {
    return null;
  }
}

async function loadSales(choose = null) {
  const body = await refreshNow();
  if (!body) return;
  const pick = byId("sale-pick");
  const keep = choose || pick.value;
  pick.replaceChildren(...body.sales.map((sale) => el("option", { value: sale.sale, text: `${sale.title} (${sale.sale})` })));
  if (keep && body.sales.some((sale) => sale.sale === keep)) pick.value = keep;
  await showSale();
}

function chooseForFacts(lot) {
  const select = byId("lot");
  if (![...select.options].some((option) => option.value === lot)) {
    select.append(el("option", { value: lot, text: lot }));
  }
  select.value = lot;
  select.dispatchEvent(new Event("change"));
  byId("facts-console").scrollIntoView({ behavior: "smooth" });
}

function lotRow(lot) {
  const facts = el("button", { type: "button", className: "secondary", "aria-label": `Facts and documents of ${lot.title}`, dataset: { facts: lot.lot_id } }, "Facts and documents");
  facts.addEventListener("click", () => chooseForFacts(lot.lot_id));
  const actions = el("td", {}, facts);
  const canRelist = (lot.status === "FAILED" || lot.status === "DEFAULTED") && !lot.relisted_as;
  if (canRelist) {
    const fixed = lot.format === "JUDICIAL_CN" && lot.status === "FAILED" && lot.relists;
    const words = fixed ? "Sell at a fixed price" : "Relist";
    const relist = el("button", { type: "button", "aria-label": `${words}: ${lot.title}`, dataset: { relist: lot.lot_id } }, words);
    relist.addEventListener("click", () => openRelist(lot, fixed));
    actions.append(" ", relist);
  }
  const note = lot.relisted_as ? ` · relisted as ${lot.relisted_as}` : lot.relists ? ` · relisting of ${lot.relists}` : "";
  return el("tr", { dataset: { lot: lot.lot_id } },
    el("td", {}, el("a", { href: `/lot/${encodeURIComponent(lot.lot_id)}`, text: lot.title }), ` (${lot.lot_id})`),
    el("td", { text: `${statusWords(lot)} · ${formatWords(lot.format)}${note}` }),
    el("td", { className: "amount", text: lot.price === null ? "no bid" : formatMoney(lot.price, lot.currency) }),
    actions);
}

async function showSale() {
  const id = byId("sale-pick").value;
  if (!id) {
    byId("sale-state").textContent = "No sale yet.";
    byId("sale-lot-list").replaceChildren();
    return;
  }
  const body = await call(`/api/sales/${encodeURIComponent(id)}`);
  serverNowUs = body.now_us;
  current = body.sale;
  const first = current.lots[0];
  const zone = first ? first.legal_timezone : "UTC";
  const opens = first ? ` · opens ${formatTime(first.start_at, zone)}` : "";
  const reason = current.reason ? ` · last reason: ${current.reason}` : "";
  byId("sale-state").replaceChildren(`${current.title}: ${SALE_WORDS[current.status] || current.status}${opens}${reason} · `,
    el("a", { href: `/sale/${encodeURIComponent(current.sale)}`, text: "the sale page" }));
  byId("sale-lot-list").replaceChildren(...current.lots.map(lotRow));
  byId("sale-publish").disabled = current.status !== "scheduled";
  if (current.notice) byId("sale-notice").value = current.notice;
}

async function publish() {
  const result = byId("sale-action-result");
  if (!current) return say(result, "Choose a sale first.", "error");
  const text = byId("sale-notice").value.trim();
  if (!text) return say(result, "Write the notice first.", "error");
  try {
    const done = await call(`/api/console/sales/${encodeURIComponent(current.sale)}/notice`, { method: "POST", body: { text } });
    say(result, `Published the notice of ${current.title} (ledger entry ${done.entry}).`, "ok");
    await showSale();
  } catch (error) {
    say(result, `The notice was not published: ${errorWords(error)}`, "error");
  }
}

async function act(action) {
  const result = byId("sale-action-result");
  if (!current) return say(result, "Choose a sale first.", "error");
  const reason = byId("sale-reason").value.trim();
  if (!reason) return say(result, "Say why first: bidders read it on the sale page.", "error");
  if (action === "cancel" && !confirm(`Cancel every lot of ${current.title} that has not closed? This cannot be undone.`)) return;
  try {
    const done = await call(`/api/console/sales/${encodeURIComponent(current.sale)}/actions`, { method: "POST", body: { action, reason } });
    const refused = done.lots.filter((lot) => !lot.applied);
    const words = `${ACTION_WORDS[action]} ${current.title}: ${done.lots.length - refused.length} of ${done.lots.length} lots (ledger entry ${done.entry}).`;
    say(result, refused.length ? `${words} Refused for ${refused.map((lot) => lot.lot).join(", ")}.` : words, refused.length ? "error" : "ok");
    await showSale();
  } catch (error) {
    say(result, errorWords(error), "error");
  }
}

function openRelist(lot, fixed) {
  relisting = { lot, fixed };
  const form = byId("relist-form");
  form.hidden = false;
  byId("relist-heading").textContent = fixed ? `Fixed-price sale of ${lot.title}` : `Relist ${lot.title}`;
  byId("relist-rule").textContent = fixed
    ? "The lot failed a second time: the court may order a fixed-price sale at the last start price or lower, open for up to 60 days. The first bidder who confirms at that price buys it."
    : lot.format === "JUDICIAL_CN"
      ? "A judicial relisting starts at no less than 80 % of the last start price and opens only after its notice has run: 15 days for real estate, 7 for movables, counted from now."
      : "The relisted lot is a new lot with its own bids; the failed lot stays on the ledger.";
  byId("relist-price-label").textContent = fixed ? "Fixed price" : "New opening price";
  const price = fixed ? lot.start_price : Math.ceil(lot.start_price * 0.8);
  byId("relist-price").value = amountInputText(price, lot.currency);
  byId("relist-lot").value = `${lot.lot_id}-${fixed ? "fixed" : "r"}`;
  byId("relist-days").value = fixed ? "0" : lot.format === "JUDICIAL_CN" ? "15" : "1";
  byId("relist-hours").value = fixed ? "0" : "1";
  byId("relist-duration").value = fixed ? "60" : "1";
  byId("relist-button").textContent = fixed ? "Open the fixed-price sale" : "Relist the lot";
  say(byId("relist-result"), "");
  form.scrollIntoView({ behavior: "smooth" });
}

async function relist(event) {
  event.preventDefault();
  const result = byId("relist-result");
  if (!relisting) return;
  const { lot, fixed } = relisting;
  say(result, fixed ? "Opening the fixed-price sale…" : "Relisting…");
  let price;
  try {
    price = parseAmount(byId("relist-price").value, lot.currency);
  } catch (error) {
    return say(result, errorWords(error), "error");
  }
  await refreshNow();
  const days = Number(byId("relist-days").value || 0);
  const hours = Number(byId("relist-hours").value || 0);
  const startAt = Math.round(now() + days * DAY_US + hours * HOUR_US + MINUTE_US);
  const body = {
    lot: byId("relist-lot").value.trim(),
    start_price: price,
    start_at: startAt,
    end_at: Math.round(startAt + Number(byId("relist-duration").value || 1) * DAY_US),
  };
  try {
    const made = await call(`/api/console/lots/${encodeURIComponent(lot.lot_id)}/relist`, { method: "POST", body });
    const view = made.lot;
    say(result, `${fixed ? "Opened the fixed-price sale" : "Relisted"} ${lot.title} as ${view.lot_id} at ${formatMoney(view.start_price, view.currency)}, opening ${formatTime(view.start_at, view.legal_timezone)} (ledger entry ${made.entry}).`, "ok");
    byId("relist-form").hidden = true;
    relisting = null;
    await showSale();
  } catch (error) {
    if (error.code === "NOTICE_TOO_SHORT") {
      say(result, `Too early: ${errorWords(error)} Choose a later opening time.`, "error");
    } else {
      say(result, `The lot was not relisted: ${errorWords(error)}`, "error");
    }
  }
}

function start() {
  if (!token()) return;
  setBearer(token());
  byId("sale-add-lot").addEventListener("click", addLotRow);
  byId("sale-preset").addEventListener("change", presetChanged);
  byId("sale-form").addEventListener("submit", createSale);
  byId("sale-pick").addEventListener("change", () => showSale().catch(() => {}));
  byId("sale-publish").addEventListener("click", publish);
  for (const button of document.querySelectorAll("[data-sale-action]")) {
    button.addEventListener("click", () => act(button.dataset.saleAction));
  }
  byId("relist-form").addEventListener("submit", relist);
  addLotRow();
  addLotRow();
  loadSales().catch(() => {});
  setInterval(() => showSale().catch(() => {}), 3000);
}

start();
