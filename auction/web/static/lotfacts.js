// The lot page's facts: a picture gallery, the address, area and description, the terms of
// sale (appraisal, start price, deposit, step, the extension rule in words, priority rights),
// registered bidders and views, and the court's documents with their SHA-256 and ledger
// entry, each checkable in the browser: the file's hash, the ledger entry's body and the
// entry's receipt against the notaries' co-signed checkpoint.

import { api, ApiError, errorWords } from "./api.js";
import { describeResult, verifyServedReceipt } from "./receipt.js";
import { byId, el, formatTime } from "./util.js";

const HEARTBEAT_MS = 20_000; // auction/catalogue/presence.py HEARTBEAT_S

export const KIND_WORDS = {
  picture: "Picture",
  announcement: "Court's announcement",
  notice: "Bidding notice",
  appraisal_report: "Appraisal report",
  sale_confirmation: "Sale confirmation",
};

function sizeWords(bytes) {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function countWords(count, one, many) {
  return `${count.toLocaleString("en-US")} ${count === 1 ? one : many}`;
}

// ---------------------------------------------------------------- gallery

function renderGallery(pictures) {
  const gallery = byId("gallery");
  gallery.hidden = pictures.length === 0;
  if (!pictures.length) return;
  const main = byId("gallery-main");
  const caption = byId("gallery-caption");
  const thumbs = byId("gallery-thumbs");
  const show = (index) => {
    const picture = pictures[index];
    main.src = picture.url;
    main.alt = `Picture ${index + 1} of ${pictures.length}: ${picture.name}`;
    caption.textContent = `${index + 1} / ${pictures.length} · ${picture.name}`;
    for (const [position, button] of [...thumbs.children].entries()) {
      button.setAttribute("aria-pressed", String(position === index));
    }
    gallery.dataset.index = String(index);
  };
  thumbs.replaceChildren(...pictures.map((picture, index) => {
    const button = el("button", { type: "button", className: "thumb", "aria-label": `Show picture ${index + 1}: ${picture.name}` },
      el("img", { src: picture.url, alt: "", loading: "lazy" }));
    button.addEventListener("click", () => show(index));
    return button;
  }));
  const step = (delta) => show((Number(gallery.dataset.index || 0) + delta + pictures.length) % pictures.length);
  byId("gallery-previous").onclick = () => step(-1);
  byId("gallery-next").onclick = () => step(1);
  byId("gallery-previous").hidden = byId("gallery-next").hidden = pictures.length < 2;
  show(Number(gallery.dataset.index || 0) % pictures.length);
}

// ---------------------------------------------------------------- facts

function renderFacts(body) {
  const facts = body.facts || {};
  const terms = body.terms || {};
  const list = byId("lot-facts");
  const rows = [];
  const add = (label, value, id) => {
    if (value === null || value === undefined || value === "") return;
    rows.push(el("dt", { text: label }), el("dd", { text: String(value), id }));
  };
  add("Property", facts.property_kind);
  add("Address", facts.address, "fact-address");
  add("Area", facts.area, "fact-area");
  add("Appraised at", terms.appraisal_text, "fact-appraisal");
  if (terms.fixed_price_text) {
    // A fixed-price sale: one price and how to buy at it; no step, no bidding rule.
    add("Fixed price", terms.fixed_price_text, "fact-fixed-price");
    add("Deposit", terms.deposit_text, "fact-deposit");
    add("How to buy", terms.how_to_buy, "fact-how-to-buy");
  } else {
    add("Start price", terms.start_price_text, "fact-start");
    add("Deposit", terms.deposit_text, "fact-deposit");
    add("Bid step", terms.step_text, "fact-step");
    add("Extension", terms.extension_rule, "fact-extension");
  }
  if (terms.bids_irrevocable) {
    add(terms.fixed_price_text ? "Confirmation" : "Bids", terms.fixed_price_text
      ? "A confirmed purchase is binding: it cannot be withdrawn." : "Every bid is binding: it cannot be withdrawn.");
  }
  if (Number.isFinite(terms.start_at)) {
    add(terms.fixed_price_text ? "Sale opens" : "Bidding opens", formatTime(terms.start_at, terms.timezone));
  }
  if (terms.fixed_price_text && Number.isFinite(terms.end_at)) add("Sale ends", formatTime(terms.end_at, terms.timezone));
  list.replaceChildren(...rows);
  byId("lot-description").textContent = facts.description || "";
  byId("lot-description").hidden = !facts.description;
  const notice = byId("priority-notice");
  const priority = [terms.priority_rights, facts.priority_notice].filter(Boolean).join(" ");
  notice.textContent = priority ? `Priority purchase rights: ${priority}` : "";
  notice.hidden = !priority;
  renderCounts(body);
  byId("facts-section").hidden = false;
}

function renderCounts(body) {
  byId("lot-counts").textContent = [
    countWords(body.registered ?? 0, "registered bidder", "registered bidders"),
    `${(body.watching ?? 0).toLocaleString("en-US")} watching now`,
    countWords(body.views ?? 0, "view", "views"),
  ].join(" · ");
}

/** A random id for this open page (not tied to the account; the server keeps it a minute). */
function visitorId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_");
}

// ---------------------------------------------------------------- documents

function hex(buffer) {
  return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Check one document: its bytes' SHA-256, the ledger entry's body, the entry's receipt. */
export async function checkDocument(documentInfo, lotId) {
  const response = await fetch(documentInfo.url, { cache: "no-store" });
  if (!response.ok) throw new Error(`the file could not be fetched (${response.status})`);
  const digest = hex(await crypto.subtle.digest("SHA-256", await response.arrayBuffer()));
  if (digest !== documentInfo.sha256) {
    return { ok: false, words: `Mismatch: the file's SHA-256 is ${digest}, not the ${documentInfo.sha256} shown.` };
  }
  let receipt;
  try {
    receipt = await api(`/log/receipt/${documentInfo.entry}`);
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 503)) {
      return { ok: false, pending: true, words: `The file's SHA-256 matches. Ledger entry ${documentInfo.entry} is not yet covered by a co-signed checkpoint; check again in a moment.` };
    }
    throw error;
  }
  const entry = JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(receipt.entry), (c) => c.charCodeAt(0))));
  const body = entry.body || {};
  if (entry.type !== "document" || body.sha256 !== digest || body.lot !== lotId) {
    return { ok: false, words: `Mismatch: ledger entry ${documentInfo.entry} does not record this file for this lot.` };
  }
  const policy = await api("/log/policy", { text: true });
  const result = await verifyServedReceipt(receipt, policy);
  return {
    ok: true,
    words: `Verified: the file's SHA-256 is the one recorded in ledger entry ${documentInfo.entry}. ${describeResult(result)}`,
  };
}

function renderDocuments(documents, lotId) {
  const section = byId("documents-section");
  section.hidden = documents.length === 0;
  const list = byId("documents");
  list.replaceChildren(...documents.map((info) => {
    const title = KIND_WORDS[info.kind] || "Document";
    const text = info.content_type === "text/plain";
    const result = el("p", { className: "verify-result", role: "status" });
    const check = el("button", { type: "button", className: "secondary", "aria-label": `Check the SHA-256 of ${info.name} against ledger entry ${info.entry}` }, "Check against the ledger");
    check.addEventListener("click", async () => {
      result.textContent = "Checking…";
      result.dataset.kind = "info";
      try {
        const verdict = await checkDocument(info, lotId);
        result.textContent = verdict.words;
        result.dataset.kind = verdict.ok ? "ok" : verdict.pending ? "warn" : "error";
      } catch (error) {
        result.textContent = error.step ? describeResult(error) : `The check failed: ${errorWords(error)}`;
        result.dataset.kind = "error";
      }
    });
    const item = el("li", { className: "document", dataset: { document: String(info.id), kind: info.kind } },
      el("h3", { text: title }),
      el("p", {},
        el("a", { href: info.url, download: info.content_type === "application/pdf" ? info.name : null }, info.name),
        ` · ${text ? "plain text" : "PDF"} · ${sizeWords(info.size)}`),
      el("p", { className: "hash" }, "SHA-256 ", el("code", { className: "mono sha256", text: info.sha256 })),
      el("p", { className: "entry" }, "Recorded in ledger entry ",
        el("a", { href: `/log/receipt/${info.entry}`, className: "ledger-entry", text: String(info.entry) })),
      check, result);
    if (text) {
      const reader = el("details", { className: "document-text" }, el("summary", { text: `Read the ${title.toLowerCase()}` }));
      reader.addEventListener("toggle", async () => {
        if (!reader.open || reader.querySelector("pre")) return;
        try {
          const response = await fetch(info.url);
          reader.append(el("pre", { className: "mono", text: await response.text() }));
        } catch (error) {
          reader.append(el("p", { "data-kind": "error", text: `The text could not be loaded: ${errorWords(error)}` }));
        }
      });
      item.insertBefore(reader, check);
    }
    return item;
  }));
}

// ---------------------------------------------------------------- start

/** Load and show the lot's facts; count this visit. Resolves to the facts (or null). */
export async function startFacts(lotId) {
  const path = `/api/lots/${encodeURIComponent(lotId)}`;
  let body;
  try {
    body = await api(`${path}/facts`);
  } catch {
    return null;
  }
  renderGallery(body.pictures || []);
  renderFacts(body);
  renderDocuments(body.documents || [], lotId);
  const visitor = visitorId();
  const heartbeat = async () => {
    try {
      const counted = await api(`${path}/views`, { method: "POST", body: { visitor } });
      const fresh = await api(`${path}/facts`);
      renderCounts({ ...fresh, views: counted.views, watching: counted.watching });
    } catch {
      // Counting is best effort: keep the last counts.
    }
  };
  await heartbeat();
  setInterval(heartbeat, HEARTBEAT_MS);
  return body;
}
