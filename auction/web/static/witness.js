// Every browser a witness (docs/protocol.md, "Catalogue and receipts"). The page keeps, per log
// origin, the last co-signed checkpoint it verified (localStorage) and checks each newer one
// against it with the log's consistency proof (GET /log/proof/consistency, RFC 9162 2.1.4).
// A log that shows different histories to different people (a split view) is caught here: the
// page says so in words and offers both signed checkpoints and the proof as a file.
//
// Steps of one check, fail-closed: 1 verify the served checkpoint (log signature and notary
// quorum of /log/policy, receipt.js); 2 compare it with the kept one (same size: same root);
// 3 fetch the proof between the two sizes and verify it (SHA-256 in WebCrypto); 4 keep the
// newer checkpoint only once the proof verified.

import { api, errorWords } from "./api.js";
import { describeResult, verifyCheckpoint } from "./receipt.js";
import { el, formatTime } from "./util.js";

const KEPT_PREFIX = "gavel.witness.v1:";
const FORK_PREFIX = "gavel.witness.fork.v1:";
const PROOF_HEADER = "gavel/consistency/v1";
export const EVIDENCE_FORMAT = "gavel/split-view-evidence/v1";

class ProofFailure extends Error {}

function fail(detail) {
  throw new ProofFailure(detail);
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function fromBase64(text) {
  const binary = atob(text);
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

async function nodeHash(left, right) {
  const bytes = new Uint8Array(1 + left.length + right.length);
  bytes[0] = 1; // RFC 9162 2.1.1: SHA-256(0x01 || left || right)
  bytes.set(left, 1);
  bytes.set(right, 1 + left.length);
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

/** Read a gavel/consistency/v1 answer: {old, new, proof: [Uint8Array]}. */
export function parseConsistency(text) {
  const lines = text.split("\n");
  if (lines[0] !== PROOF_HEADER || lines[lines.length - 1] !== "") fail("the proof is not a gavel/consistency/v1 text");
  const old = /^old (0|[1-9][0-9]{0,15})$/.exec(lines[1] || "");
  const now = /^new (0|[1-9][0-9]{0,15})$/.exec(lines[2] || "");
  if (!old || !now) fail("the proof does not name its two tree sizes");
  const proof = lines.slice(3, -1).map((line) => {
    let digest;
    try {
      digest = fromBase64(line);
    } catch {
      fail("a proof hash is not base64");
    }
    if (digest.length !== 32) fail("a proof hash is not 32 bytes");
    return digest;
  });
  if (proof.length > 64) fail("the proof has more than 64 hashes");
  return { old: Number(old[1]), new: Number(now[1]), proof };
}

function bitLength(value) {
  return value === 0n ? 0 : value.toString(2).length;
}

function popCount(value) {
  let count = 0;
  for (let rest = value; rest > 0n; rest >>= 1n) count += Number(rest & 1n);
  return count;
}

/**
 * RFC 9162 2.1.4.2: check that the tree (size2, root2) extends (size1, root1) with `proof`
 * (the same decomposition as chain/verify.py). Throws with the reason, returns nothing.
 */
export async function verifyConsistency(size1, size2, proof, root1, root2) {
  if (size2 < size1) fail(`the new size ${size2} is smaller than the old size ${size1}`);
  if (size1 === size2) {
    if (proof.length) fail("a proof between equal sizes must be empty");
    if (!equalBytes(root1, root2)) fail(`two different root hashes for the same size ${size1}`);
    return;
  }
  if (size1 === 0) {
    if (proof.length) fail("a proof from the empty tree must be empty");
    return;
  }
  if (!proof.length) fail("the proof is empty");
  const old = BigInt(size1);
  const index = old - 1n;
  let inner = bitLength(index ^ BigInt(size2 - 1));
  const border = popCount(index >> BigInt(inner));
  let shift = 0;
  while (((old >> BigInt(shift)) & 1n) === 0n) shift += 1;
  inner -= shift;
  const [seed, start] = old === 1n << BigInt(shift) ? [root1, 0] : [proof[0], 1];
  if (proof.length !== start + inner + border) {
    fail(`the proof has ${proof.length} hashes, from ${size1} to ${size2} entries it needs ${start + inner + border}`);
  }
  const rest = proof.slice(start);
  const mask = index >> BigInt(shift);
  let oldRoot = seed;
  let newRoot = seed;
  for (let i = 0; i < rest.length; i++) {
    const right = i < inner && ((mask >> BigInt(i)) & 1n) === 0n;
    if (!right) oldRoot = await nodeHash(rest[i], oldRoot);
    newRoot = right ? await nodeHash(newRoot, rest[i]) : await nodeHash(rest[i], newRoot);
  }
  if (!equalBytes(oldRoot, root1)) fail(`the proof does not lead to the root hash of ${size1} entries seen before`);
  if (!equalBytes(newRoot, root2)) fail(`the proof does not lead to the root hash of ${size2} entries shown now`);
}

function load(key) {
  try {
    const text = localStorage.getItem(key);
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

function store(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage full or switched off: the page still checks what it sees while it is open.
  }
}

function seenNow(note, verified) {
  return {
    origin: verified.origin, size: verified.size, root: verified.root, note,
    seen_us: Date.now() * 1000, page: location.pathname,
  };
}

function entries(size) {
  return `${size.toLocaleString("en")} ${size === 1 ? "entry" : "entries"}`;
}

function evidenceOf(kept, shown, proofRequest, proofText, reason) {
  const checkpoint = (side) => ({
    seen_at: new Date(side.seen_us / 1000).toISOString(), page: side.page,
    size: side.size, root: side.root, checkpoint: side.note,
  });
  return {
    format: EVIDENCE_FORMAT,
    origin: kept.origin,
    summary: `The ledger ${kept.origin} showed this browser a checkpoint of ${entries(kept.size)} `
      + `(root hash ${kept.root}) and later one of ${entries(shown.size)} (root hash ${shown.root}) `
      + `that does not extend it: ${reason}.`,
    detected_at: new Date().toISOString(),
    earlier: checkpoint(kept),
    later: checkpoint(shown),
    consistency: { request: proofRequest, proof: proofText, failure: reason },
  };
}

/**
 * One check of the served checkpoint against the kept one. Returns {kind, ...}: kind is
 * "first", "same", "grown", "older", "fork", "unchecked" or "unverified".
 */
export async function checkOnce() {
  const [note, policyText] = await Promise.all([
    api("/log/checkpoint", { text: true, token: null }),
    api("/log/policy", { text: true, token: null }),
  ]);
  let verified;
  try {
    verified = await verifyCheckpoint(note, policyText);
  } catch (error) {
    return { kind: "unverified", words: describeResult(error) };
  }
  const shown = seenNow(note, verified);
  const keptKey = KEPT_PREFIX + verified.origin;
  const kept = load(keptKey);
  const fork = load(FORK_PREFIX + verified.origin);
  if (!kept || kept.origin !== verified.origin || !Number.isSafeInteger(kept.size)) {
    store(keptKey, shown);
    return { kind: "first", shown, fork };
  }
  if (kept.size === shown.size && kept.root === shown.root) return { kind: "same", shown, kept, fork };
  const [older, newer] = kept.size <= shown.size ? [kept, shown] : [shown, kept];
  const request = `/log/proof/consistency?from=${older.size}&to=${newer.size}`;
  let proofText = null;
  let reason = null;
  if (kept.size === shown.size) {
    reason = `both checkpoints have ${entries(kept.size)} but different root hashes`;
  } else {
    try {
      proofText = await api(request, { text: true, token: null });
    } catch (error) {
      return { kind: "unchecked", shown, kept, fork, words: errorWords(error) };
    }
    try {
      const parsed = parseConsistency(proofText);
      if (parsed.old !== older.size || parsed.new !== newer.size) fail("the proof is for other tree sizes");
      await verifyConsistency(older.size, newer.size, parsed.proof, fromBase64(older.root), fromBase64(newer.root));
    } catch (error) {
      if (!(error instanceof ProofFailure)) throw error;
      reason = `the ledger's consistency proof from ${entries(older.size)} to ${entries(newer.size)} `
        + `does not verify (${error.message})`;
    }
  }
  if (reason !== null) {
    const evidence = evidenceOf(kept, shown, request, proofText, reason);
    const recorded = fork || evidence; // the first split view seen stays the one shown
    if (!fork) store(FORK_PREFIX + verified.origin, evidence);
    return { kind: "fork", shown, kept, fork: recorded };
  }
  if (newer === shown) {
    store(keptKey, shown);
    return { kind: "grown", shown, kept, fork };
  }
  return { kind: "older", shown, kept, fork };
}

function evidenceLink(evidence) {
  const blob = new Blob([JSON.stringify(evidence, null, 2) + "\n"], { type: "application/json" });
  const name = `split-view-evidence-${evidence.earlier.size}-${evidence.later.size}.json`;
  return el("a", {
    href: URL.createObjectURL(blob), download: name, className: "download", id: "witness-evidence",
  }, "Download the evidence (both signed checkpoints and the proof)");
}

function renderFork(banner, evidence) {
  const earlier = evidence.earlier;
  const later = evidence.later;
  const at = (iso) => formatTime(Date.parse(iso) * 1000);
  banner.replaceChildren(
    el("h2", { text: "Warning: the ledger showed this browser two histories that do not fit together" }),
    el("p", {
      text: `On ${at(earlier.seen_at)} this browser saw the ledger ${evidence.origin} with `
        + `${entries(earlier.size)}, root hash ${earlier.root}. On ${at(later.seen_at)} it was shown `
        + `${entries(later.size)}, root hash ${later.root}. ${evidence.consistency.failure.charAt(0).toUpperCase()}`
        + `${evidence.consistency.failure.slice(1)}.`,
    }),
    el("p", {
      text: "An honest ledger only grows, so the later history is not the earlier one plus new "
        + "entries: the ledger was rewritten, or it shows different histories to different people. "
        + "The auction's records cannot be taken on trust until this is explained.",
    }),
    el("p", {
      text: "Nothing on this page is blocked by this warning: bids are taken as before. Keep the evidence and send it to the auction house's "
        + "auditor or to the court: it holds both signed checkpoints and the proof the ledger served.",
    }),
    el("p", {}, evidenceLink(evidence)),
  );
  banner.dataset.kind = "fork";
  banner.hidden = false;
}

function renderStatus(status, outcome) {
  if (!status) return;
  const { kind, shown, kept } = outcome;
  let words = "";
  let tone = "info";
  if (kind === "first") words = `This browser now keeps the ledger's checkpoint of ${entries(shown.size)} and will check later ones against it.`;
  else if (kind === "same") words = `Checked in this browser: the ledger still shows the checkpoint of ${entries(shown.size)} seen before.`;
  else if (kind === "grown") words = `Checked in this browser: the ledger's checkpoint of ${entries(shown.size)} extends the one of ${entries(kept.size)} seen before.`;
  else if (kind === "older") words = `The ledger showed an older checkpoint (${entries(shown.size)}); it is part of the ${entries(kept.size)} seen before.`;
  else if (kind === "unchecked") {
    words = `This browser could not check the ledger's checkpoint of ${entries(shown.size)} against the one of ${entries(kept.size)} it saw before: ${outcome.words} It will try again.`;
    tone = "warn";
  } else if (kind === "unverified") {
    words = `The ledger's latest checkpoint did not verify in this browser. ${outcome.words}`;
    tone = "error";
  } else if (kind === "fork") {
    words = "This browser caught the ledger showing two histories: see the warning at the top of the page.";
    tone = "error";
  }
  status.textContent = words;
  status.dataset.kind = tone;
  status.dataset.witness = kind;
  status.hidden = !words;
}

/**
 * Check now and every `intervalMs` (and when the page is shown again). `banner`: the element
 * that shows a split view (hidden otherwise); `status`: an optional line saying what was
 * checked. Returns {check}: call it to check again (e.g. a Refresh button).
 */
export function startWitness({ banner, status = null, intervalMs = 30_000 }) {
  let running = null;
  async function check() {
    if (running) return running;
    running = (async () => {
      try {
        const outcome = await checkOnce();
        if (outcome.fork) renderFork(banner, outcome.fork);
        renderStatus(status, outcome);
        return outcome;
      } catch (error) {
        // No checkpoint yet, or the server is away: nothing to compare; try again later.
        if (status) {
          status.textContent = `The ledger's checkpoint could not be checked yet: ${errorWords(error)}`;
          status.dataset.kind = "info";
          status.dataset.witness = "none";
          status.hidden = false;
        }
        return null;
      } finally {
        running = null;
      }
    })();
    return running;
  }
  check();
  if (intervalMs > 0) setInterval(check, intervalMs);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") check();
  });
  return { check };
}
