// A bidder's own state on one lot, as the server keeps it (GET /api/me/lots, docs/protocol.md
// §1 "My auctions"): shared by the My auctions page (my.js) and the lot room (mine.js).
// Receipts and documents are fetched with the session, so any browser logged into the account
// can download them at any time.

import { api, ApiError, errorWords } from "./api.js";
import { formatMoney } from "./money.js";
import { describeResult, verifyServedReceipt } from "./receipt.js";
import { el, formatTime } from "./util.js";

const KIND_WORDS = { bid: "Bid", max: "Proxy maximum", proxy: "Proxy bid" };
const DOCUMENT_WORDS = { sale_confirmation: "sale confirmation (成交确认书)" };

/** Save `blob` as a file named `name` (a click on a temporary link). */
export function saveBlob(name, blob) {
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

async function fetchReceipt(entry) {
  return api(`/log/receipt/${entry}`);
}

function receiptPendingWords(error) {
  if (error instanceof ApiError && (error.status === 404 || error.status === 503)) {
    return "Receipt pending: the notaries have not yet co-signed a checkpoint that covers this entry. Try again in a moment.";
  }
  return `The receipt could not be fetched: ${errorWords(error)}`;
}

function receiptControls(entry, label, note) {
  const download = el("button", { type: "button", className: "secondary download-receipt",
    "aria-label": `Download the receipt of ledger entry ${entry}` }, "Download receipt");
  const verify = el("button", { type: "button", className: "secondary verify",
    "aria-label": `Verify the receipt of ledger entry ${entry}` }, "Verify");
  download.addEventListener("click", async () => {
    note.textContent = "Fetching the receipt…";
    try {
      const body = await fetchReceipt(entry);
      saveBlob(`receipt-${entry}.json`, new Blob([JSON.stringify(body, null, 2) + "\n"], { type: "application/json" }));
      note.textContent = `Receipt of ledger entry ${entry} saved.`;
      note.dataset.kind = "ok";
    } catch (error) {
      note.textContent = receiptPendingWords(error);
      note.dataset.kind = "warn";
    }
  });
  verify.addEventListener("click", async () => {
    note.textContent = "Verifying…";
    try {
      const [body, policy] = await Promise.all([fetchReceipt(entry), api("/log/policy", { text: true })]);
      const result = await verifyServedReceipt(body, policy);
      note.textContent = describeResult(result);
      note.dataset.kind = "ok";
    } catch (error) {
      note.textContent = error.step ? describeResult(error) : receiptPendingWords(error);
      note.dataset.kind = "error";
    }
  });
  return el("span", { className: "row", role: "group", "aria-label": label }, download, verify);
}

function bidItem(bid, summary) {
  const kind = KIND_WORDS[bid.kind] || "Bid";
  const amount = formatMoney(bid.amount, bid.currency || summary.currency);
  const when = formatTime(bid.t_us, summary.legal_timezone);
  const entry = Number.isSafeInteger(bid.entry) ? ` Ledger entry ${bid.entry}.` : "";
  const item = el("li", { className: "mine-bid", dataset: { entry: bid.entry ?? "", result: bid.result } },
    el("span", { "data-kind": bid.result === "rejected" ? "error" : null, text: `${kind} ${amount} at ${when}: ${bid.words}${entry}` }));
  if (bid.receipt && Number.isSafeInteger(bid.entry)) {
    const note = el("p", { className: "receipt-note muted", role: "status" });
    item.append(" ", receiptControls(bid.entry, `Receipt of ledger entry ${bid.entry}`, note), note);
  }
  return item;
}

function depositWords(summary) {
  const deposit = summary.deposit;
  if (!deposit.amount) return deposit.words.charAt(0).toUpperCase() + deposit.words.slice(1);
  let words = `${formatMoney(deposit.amount, summary.currency)}, ${deposit.words}`;
  if (deposit.state === "RELEASED" && deposit.deadline_us) {
    words += ` (back on your account by ${formatTime(deposit.deadline_us, summary.legal_timezone)})`;
  }
  return words;
}

async function downloadDocument(document_, session, note) {
  note.textContent = "Downloading…";
  try {
    const response = await fetch(document_.url, { headers: { Authorization: `Bearer ${session.session}` }, cache: "no-store" });
    if (!response.ok) throw new ApiError(response.status, "HTTP", `The server answered ${response.status}.`);
    const blob = await response.blob();
    saveBlob(document_.name, blob);
    note.textContent = `Saved ${document_.name} (${blob.size} bytes).`;
    note.dataset.kind = "ok";
  } catch (error) {
    note.textContent = `The document could not be downloaded: ${errorWords(error)}`;
    note.dataset.kind = "error";
  }
}

function documentItem(document_, summary, session) {
  const what = DOCUMENT_WORDS[document_.kind] || document_.kind;
  const note = el("p", { className: "document-note muted", role: "status" });
  const button = el("button", { type: "button", className: "download-document",
    "aria-label": `Download the ${what} of ${summary.title}` }, `Download the ${what}`);
  button.addEventListener("click", () => downloadDocument(document_, session, note));
  const anchored = Number.isSafeInteger(document_.entry)
    ? `Its SHA-256 ${document_.sha256} is recorded in ledger entry ${document_.entry}.`
    : `Its SHA-256 is ${document_.sha256}; the ledger entry that records it is being written.`;
  const children = [button, el("p", { className: "mono sha", text: anchored })];
  if (Number.isSafeInteger(document_.entry)) {
    const entryNote = el("p", { className: "receipt-note muted", role: "status" });
    children.push(receiptControls(document_.entry, `Receipt of ledger entry ${document_.entry}`, entryNote), entryNote);
  }
  children.push(note);
  return el("li", { className: "mine-document" }, ...children);
}

/**
 * The element for one summary. options: {heading: bool (the lot's title as a link),
 * canSign: bool, session}.
 */
export function renderSummary(summary, options = {}) {
  const headlineClass = { leading: "leading", won: "leading", outbid: "outbid", lost: "outbid" }[summary.standing] || "";
  const parts = [];
  if (options.heading) {
    parts.push(el("h2", {}, el("a", { href: `/lot/${encodeURIComponent(summary.lot)}` }, summary.title || summary.lot)));
    if (summary.sale_title) parts.push(el("p", { className: "muted", text: summary.sale_title }));
  }
  parts.push(el("p", { className: `mine-headline ${headlineClass}`, role: "status", "aria-live": "polite", text: summary.headline }));
  const facts = el("dl", { className: "facts" },
    el("dt", { text: "Your bidder code" }), el("dd", { text: summary.code }),
    el("dt", { text: "Standing" }), el("dd", { className: "mine-standing", text: summary.standing_words }),
    el("dt", { text: "Current price" }), el("dd", { text: summary.price === null ? "No bids yet" : formatMoney(summary.price, summary.currency) }),
    el("dt", { text: "Deposit" }), el("dd", { className: "mine-deposit", text: depositWords(summary) }),
    el("dt", { text: "Bidding notice" }), el("dd", { text: summary.notice.accepted
      ? `Accepted ${formatTime(summary.notice.accepted_us, summary.legal_timezone)}` : "Not accepted yet" }));
  parts.push(facts);
  if (summary.outcome) {
    parts.push(el("h3", { text: "Next steps" }),
      el("ul", { className: "mine-outcome" }, ...summary.outcome.words.map((words) => el("li", { text: words }))),
      el("p", { className: "muted", text: "Pay the balance into the account the court or the seller names in the sale confirmation. A balance not paid by the deadline can cost you the deposit." }));
  }
  if (summary.documents.length) {
    parts.push(el("h3", { text: "Documents" }),
      el("ul", { className: "plain mine-documents" }, ...summary.documents.map((d) => documentItem(d, summary, options.session))));
  } else if (summary.standing === "won") {
    parts.push(el("p", { className: "muted", text: "The sale confirmation (成交确认书) is being prepared…" }));
  }
  parts.push(el("h3", { text: "Your bids" }));
  if (summary.bids.length) {
    parts.push(el("ul", { className: "plain mine-bids" }, ...summary.bids.slice().reverse().map((bid) => bidItem(bid, summary))));
  } else {
    parts.push(el("p", { className: "muted", text: "No bids yet." }));
  }
  return el("article", { className: "mine-lot", dataset: { lot: summary.lot, standing: summary.standing } }, ...parts);
}
