// The auditor page: ledger size, the latest co-signed checkpoint (verified here against the
// published policy), each notary and its lag (GET /api/auditor), and verification of an
// uploaded receipt.

import { api, errorWords } from "./api.js";
import { describeResult, verifyCheckpoint, verifyReceipt, verifyServedReceipt } from "./receipt.js";
import { byId, el, say } from "./util.js";
import { startWitness } from "./witness.js";

let policyText = null;

function number(value) {
  return Number.isFinite(value) ? value.toLocaleString("en") : "—";
}

async function loadPolicy() {
  policyText = await api("/log/policy", { text: true });
  byId("policy").textContent = policyText;
  const quorum = /^quorum (\S+)/m.exec(policyText);
  const group = quorum && new RegExp(`^group ${quorum[1]} (\\S+) (.+)$`, "m").exec(policyText);
  byId("quorum").textContent = group
    ? `Quorum: ${group[1]} of ${group[2].trim().split(/\s+/).length} notaries must co-sign.`
    : quorum && quorum[1] === "none" ? "Quorum: none (no notary co-signature required)." : "";
}

function renderAuditor(body) {
  const checkpoint = body.checkpoint || body.latest_checkpoint || {};
  const logSize = body.log_size ?? body.size ?? body.entries;
  byId("log-size").textContent = number(logSize);
  const size = checkpoint.size ?? body.checkpoint_size;
  byId("checkpoint-size").textContent = Number.isFinite(size) ? `${number(size)} entries` : "none published yet";
  const notaries = body.notaries || [];
  byId("notaries").replaceChildren(...notaries.map((notary) => {
    const cosigned = notary.size ?? notary.last_size ?? notary.cosigned_size ?? notary.last_cosigned_size;
    const lag = notary.lag ?? (Number.isFinite(logSize) && Number.isFinite(cosigned) ? logSize - cosigned : null);
    return el("tr", {},
      el("td", { className: "mono", text: notary.name || notary.url || "—" }),
      el("td", { text: number(cosigned) }),
      el("td", { text: Number.isFinite(lag) ? (lag === 0 ? "up to date" : number(lag)) : "—" }));
  }));
  if (!notaries.length) byId("notaries").append(el("tr", {}, el("td", { colspan: "3", text: "This ledger names no notaries." })));
}

async function loadCheckpoint() {
  const check = byId("checkpoint-check");
  let note;
  try {
    note = await api("/log/checkpoint", { text: true });
  } catch (error) {
    check.textContent = `No checkpoint: ${errorWords(error)}`;
    return;
  }
  try {
    const result = await verifyCheckpoint(note, policyText || "");
    byId("checkpoint-root").textContent = result.root;
    if (byId("checkpoint-size").textContent === "—" || byId("checkpoint-size").textContent.startsWith("none")) {
      byId("checkpoint-size").textContent = `${number(result.size)} entries`;
    }
    check.textContent = `Verified: signed by ${result.origin}, co-signed by ${result.notaries.join(", ") || "no notary"}.`;
    check.dataset.kind = "ok";
  } catch (error) {
    check.textContent = describeResult(error);
    check.dataset.kind = "error";
  }
}

async function refresh() {
  const problems = [];
  try {
    await loadPolicy();
  } catch (error) {
    problems.push(`The policy could not be loaded: ${errorWords(error)}`);
  }
  try {
    renderAuditor(await api("/api/auditor"));
  } catch (error) {
    problems.push(`The auditor summary could not be loaded: ${errorWords(error)}`);
  }
  say(byId("status"), problems.join(" "), problems.length ? "error" : "info");
  await loadCheckpoint();
}

function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(new Uint8Array(reader.result));
    reader.onerror = () => reject(new Error("the file could not be read"));
    reader.readAsArrayBuffer(file);
  });
}

async function verifyUpload(event) {
  event.preventDefault();
  const result = byId("verify-result");
  const receiptFile = byId("receipt-file").files[0];
  if (!receiptFile) return say(result, "Choose a receipt file first.", "error");
  say(result, "Verifying…");
  try {
    if (!policyText) await loadPolicy();
    const bytes = await readFile(receiptFile);
    const text = new TextDecoder().decode(bytes);
    let outcome;
    if (text.trimStart().startsWith("{")) {
      let body;
      try {
        body = JSON.parse(text);
      } catch {
        return say(result, "The receipt file is not valid JSON.", "error");
      }
      outcome = await verifyServedReceipt(body, policyText);
    } else {
      const entryFile = byId("entry-file").files[0];
      if (!entryFile) return say(result, "A .tlog-proof receipt needs its entry file too.", "error");
      outcome = await verifyReceipt(bytes, await readFile(entryFile), policyText);
    }
    say(result, describeResult(outcome), "ok");
  } catch (error) {
    say(result, error.step ? describeResult(error) : `Verification failed: ${errorWords(error)}`, "error");
  }
}

const witness = startWitness({ banner: byId("witness-banner"), status: byId("witness-status"), intervalMs: 60_000 });
byId("refresh").addEventListener("click", () => Promise.all([refresh(), witness.check()]));
byId("verify-form").addEventListener("submit", verifyUpload);
refresh();
