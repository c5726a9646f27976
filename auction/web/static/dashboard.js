// The staff dashboard: plots (SVG drawn by the server, fetched with the staff token and shown
// as <img> from a data: address, never inlined) and the tables with their CSV/JSON exports.
import { api, setBearer, errorWords } from "./api.js";
import { el, byId, say } from "./util.js";

const TOKEN_KEY = "gavel-console-token";
const token = new URLSearchParams(location.hash.slice(1)).get("token") || sessionStorage.getItem(TOKEN_KEY);

const PLOT_WORDS = {
  funnel: "From visit to sale",
  bids: "Bids and price over time",
  bidders: "Bidders active per minute",
  watchers: "Watchers of the live stream",
  hammer: "Hammer price against start price and appraisal",
  deposits: "Deposits and their timeliness",
};
const TABLE_WORDS = {
  funnel: "Funnel per lot and per sale",
  bids: "Bids and soft-close extensions",
  bidders: "Bidders active per minute",
  watchers: "Watchers of the live stream",
  hammer: "Sold lots",
  deposits: "Deposits",
};

async function fetchBlob(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" });
  if (!response.ok) throw new Error(`The server answered ${response.status} for ${path}.`);
  return response.blob();
}

function dataAddress(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

async function plotFigure(name, lot) {
  const query = lot ? `?lot=${encodeURIComponent(lot)}` : "";
  const image = el("img", { alt: PLOT_WORDS[name] + (lot ? ` (lot ${lot})` : ""), className: "plot", dataset: { plot: name } });
  const figure = el("figure", {}, image, el("figcaption", { text: PLOT_WORDS[name] }));
  const blob = await fetchBlob(`/api/dashboard/plots/${name}.svg${query}`);
  if (blob.type !== "image/svg+xml") throw new Error("The plot is not an SVG image.");
  image.src = await dataAddress(blob);
  return figure;
}

async function download(name, suffix) {
  const blob = await fetchBlob(`/api/dashboard/${name}.${suffix}`);
  const link = el("a", { href: URL.createObjectURL(blob), download: `gavel-${name}.${suffix}` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

function tableView(table) {
  const head = el("tr", {}, ...table.columns.map((c) => el("th", { scope: "col", text: c })));
  const rows = table.rows.map((row) => el("tr", {}, ...table.columns.map((c) => el("td", { text: String(row[c]) }))));
  const buttons = el("p", {},
    el("button", { type: "button", className: "secondary", dataset: { export: `${table.name}.csv` } }, "Download CSV"),
    " ",
    el("button", { type: "button", className: "secondary", dataset: { export: `${table.name}.json` } }, "Download JSON"));
  for (const button of buttons.querySelectorAll("button")) {
    button.addEventListener("click", () => {
      const [name, suffix] = button.dataset.export.split(".");
      download(name, suffix).catch((error) => say(byId("status"), errorWords(error), "error"));
    });
  }
  return el("details", { dataset: { table: table.name } },
    el("summary", { text: `${TABLE_WORDS[table.name] || table.name} (${table.rows.length} rows)` }),
    buttons,
    el("div", { className: "table-wrap" }, el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows))));
}

async function showLot(lot) {
  const box = byId("lot-plots");
  box.replaceChildren();
  if (!lot) return;
  for (const name of ["funnel", "bids", "bidders", "watchers"]) box.append(await plotFigure(name, lot));
}

async function load() {
  const body = await api("/api/dashboard");
  const choice = byId("lot-choice");
  const previous = choice.value;
  choice.replaceChildren(...body.lots.map((lot) => el("option", { value: lot.lot, text: `${lot.lot} — ${lot.title}` })));
  if (previous && body.lots.some((lot) => lot.lot === previous)) choice.value = previous;
  byId("tables").replaceChildren(...Object.values(body.tables).map(tableView));
  const all = byId("all-plots");
  all.replaceChildren();
  for (const name of ["hammer", "deposits"]) all.append(await plotFigure(name, null));
  await showLot(choice.value);
  document.body.dataset.loaded = "yes";
}

function start() {
  if (!token) {
    say(byId("status"), "This dashboard needs a staff link (it ends in #token=…): open it from the console.", "error");
    return;
  }
  setBearer(token);
  sessionStorage.setItem(TOKEN_KEY, token);
  history.replaceState(null, "", location.pathname);
  const fail = (error) => say(byId("status"), errorWords(error), "error");
  byId("lot-choice").addEventListener("change", (event) => showLot(event.target.value).catch(fail));
  byId("refresh").addEventListener("click", () => load().catch(fail));
  load().catch(fail);
}

start();
