// Receipt verification in the browser: a c2sp.org/tlog-proof@v1 receipt, the entry bytes and
// the published tlog-policy. The same numbered, fail-closed steps as chain.verify_receipt:
//   1 parse, 2 entry, 3 checkpoint, 4 signatures, 5 quorum, 6 inclusion.
// The first failing step throws a ReceiptError naming it in words.

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export const STEPS = {
  1: ["parse", "reading the receipt"],
  2: ["entry", "checking the ledger entry"],
  3: ["checkpoint", "reading the checkpoint"],
  4: ["signatures", "checking the log's and the notaries' signatures"],
  5: ["quorum", "checking the notary quorum"],
  6: ["inclusion", "checking the inclusion proof"],
};

const ALG_ED25519 = 0x01;
const ALG_COSIGNATURE_V1 = 0x04;
const SIGNATURE_PREFIX = "\u2014 ";
const MAX_PROOF_HASHES = 63;

export class ReceiptError extends Error {
  constructor(step, detail) {
    const [name, doing] = STEPS[step];
    super(`Verification failed at step ${step} (${name}, ${doing}): ${detail}`);
    this.name = "ReceiptError";
    this.step = step;
    this.stepName = name;
    this.detail = detail;
  }
}

class Failure extends Error {}

function fail(detail) {
  throw new Failure(detail);
}

function decodeBase64(text, what) {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) fail(`${what} is not base64`);
  let binary;
  try {
    binary = atob(text);
  } catch {
    fail(`${what} is not base64`);
  }
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

function concat(...parts) {
  const total = parts.reduce((sum, part) => sum + part.length, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

/** RFC 9162 2.1.1: leaf hash SHA-256(0x00 || entry). */
export function leafHash(entry) {
  return sha256(concat(new Uint8Array([0]), entry));
}

function nodeHash(left, right) {
  return sha256(concat(new Uint8Array([1]), left, right));
}

async function ed25519Verify(publicKey, signature, message) {
  try {
    const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    return await crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
  } catch {
    return false;
  }
}

/** C2SP signed-note key id: SHA-256(name || 0x0A || type || public key)[:4]. */
async function keyId(name, algorithm, publicKey) {
  const digest = await sha256(concat(encoder.encode(`${name}\n`), new Uint8Array([algorithm]), publicKey));
  return digest.slice(0, 4);
}

/** A verifier key "name+hexid+base64(type || key)" of type 0x01 or 0x04. */
export async function parseVerifierKey(text) {
  const first = text.indexOf("+");
  const second = text.indexOf("+", first + 1);
  if (first <= 0 || second < 0) fail(`key ${JSON.stringify(text)} is not name+id+key`);
  const name = text.slice(0, first);
  const idText = text.slice(first + 1, second);
  if (!/^[0-9a-f]{8}$/.test(idText)) fail(`key ${name} has a malformed key id`);
  const raw = decodeBase64(text.slice(second + 1), `key ${name}`);
  if (raw.length !== 33 || (raw[0] !== ALG_ED25519 && raw[0] !== ALG_COSIGNATURE_V1)) {
    fail(`key ${name} is not an Ed25519 or cosignature/v1 key`);
  }
  const algorithm = raw[0];
  const publicKey = raw.slice(1);
  const id = await keyId(name, algorithm, publicKey);
  if (Array.from(id, (b) => b.toString(16).padStart(2, "0")).join("") !== idText) {
    fail(`key ${name}: the key id does not match the key`);
  }
  return { name, algorithm, publicKey, id };
}

/** Parse a C2SP tlog-policy: logs, witnesses, groups and the quorum rule. */
export async function parsePolicy(text) {
  const logs = [];
  const rules = new Map();
  const witnesses = [];
  let quorum = null;
  const lines = text.split("\n");
  for (let number = 1; number <= lines.length; number++) {
    const line = lines[number - 1].trim();
    if (!line || line.startsWith("#")) continue;
    const fields = line.split(/[ \t]+/);
    const where = `policy line ${number}`;
    if (fields[0] === "log") {
      const key = await parseVerifierKey(fields[1] || "");
      if (key.algorithm !== ALG_ED25519) fail(`${where}: the log key must be an Ed25519 note key`);
      logs.push(key);
    } else if (fields[0] === "witness") {
      const name = fields[1];
      if (!name || rules.has(name) || name === "none") fail(`${where}: bad or repeated witness name`);
      const key = await parseVerifierKey(fields[2] || "");
      if (key.algorithm !== ALG_COSIGNATURE_V1) fail(`${where}: a witness key must be a cosignature/v1 key`);
      const witness = { kind: "witness", name, key };
      witnesses.push(witness);
      rules.set(name, witness);
    } else if (fields[0] === "group") {
      const [, name, threshold, ...memberNames] = fields;
      if (!name || rules.has(name) || name === "none" || !memberNames.length) fail(`${where}: malformed group`);
      const members = memberNames.map((member) => {
        if (!rules.has(member)) fail(`${where}: ${member} is not defined before the group`);
        return rules.get(member);
      });
      let k;
      if (threshold === "all") k = members.length;
      else if (threshold === "any") k = 1;
      else if (/^[1-9][0-9]{0,3}$/.test(threshold)) k = Number(threshold);
      else fail(`${where}: a group threshold is a number, all or any`);
      if (k < 1 || k > members.length) fail(`${where}: threshold must be between 1 and the number of members`);
      rules.set(name, { kind: "group", name, k, members });
    } else if (fields[0] === "quorum") {
      if (quorum) fail(`${where}: a second quorum line`);
      const name = fields[1];
      if (name === "none") quorum = { kind: "none", name };
      else if (rules.has(name)) quorum = rules.get(name);
      else fail(`${where}: quorum ${name} is not defined`);
    } else {
      fail(`${where}: unknown keyword ${fields[0]}`);
    }
  }
  if (!quorum) fail("the policy has no quorum line");
  return { logs, witnesses, quorum };
}

function ruleMet(rule, names) {
  if (rule.kind === "none") return true;
  if (rule.kind === "witness") return names.has(rule.name);
  return rule.members.filter((member) => ruleMet(member, names)).length >= rule.k;
}

function quorumShortfall(rule, names) {
  if (rule.kind === "witness") return `notary ${rule.name} has not co-signed`;
  const met = rule.members.filter((member) => ruleMet(member, names)).length;
  return `${met} of ${rule.members.length} notaries in group ${rule.name} co-signed, ${rule.k} required`;
}

/** Split a signed note into its text and signature lines (no verification). */
export function parseNote(bytes) {
  let text;
  try {
    text = decoder.decode(bytes);
  } catch {
    fail("the checkpoint is not valid UTF-8");
  }
  if (/[\u0000-\u0009\u000b-\u001f]/.test(text)) fail("the checkpoint contains a control character");
  const split = text.lastIndexOf("\n\n");
  if (split < 0) fail("the checkpoint has no blank line before its signatures");
  const body = text.slice(0, split + 1);
  const block = text.slice(split + 2);
  if (!block.endsWith("\n")) fail("the checkpoint has no signature lines");
  const signatures = block.slice(0, -1).split("\n").map((line) => {
    if (!line.startsWith(SIGNATURE_PREFIX)) fail("a signature line does not start with an em dash");
    const rest = line.slice(SIGNATURE_PREFIX.length);
    const space = rest.indexOf(" ");
    if (space <= 0) fail("a signature line is malformed");
    const raw = decodeBase64(rest.slice(space + 1), "a signature");
    if (raw.length < 5) fail("a signature is too short");
    return { name: rest.slice(0, space), id: raw.slice(0, 4), signature: raw.slice(4) };
  });
  return { text: body, signatures };
}

/** Parse the tlog-proof text: {index, proof: [Uint8Array], note}. */
export function parseReceipt(bytes) {
  let split = -1;
  for (let i = 0; i + 1 < bytes.length; i++) {
    if (bytes[i] === 10 && bytes[i + 1] === 10) {
      split = i;
      break;
    }
  }
  if (split < 0) fail("the receipt has no blank line before the checkpoint");
  let header;
  try {
    header = decoder.decode(bytes.slice(0, split));
  } catch {
    fail("the receipt header is not text");
  }
  const lines = header.split("\n");
  if (lines[0] !== "c2sp.org/tlog-proof@v1") fail("the receipt does not start with c2sp.org/tlog-proof@v1");
  let position = 1;
  if (lines[position] && lines[position].startsWith("extra ")) position += 1;
  const match = /^index (0|[1-9][0-9]{0,18})$/.exec(lines[position] || "");
  if (!match) fail("the receipt's index line is malformed");
  const index = Number(match[1]);
  if (!Number.isSafeInteger(index)) fail("the receipt index is too large");
  const proofLines = lines.slice(position + 1);
  if (proofLines.length > MAX_PROOF_HASHES) fail("the inclusion proof is longer than 63 hashes");
  const proof = proofLines.map((line) => {
    const digest = decodeBase64(line, "an inclusion proof hash");
    if (digest.length !== 32) fail("an inclusion proof hash is not 32 bytes");
    return digest;
  });
  const note = parseNote(bytes.slice(split + 2));
  return { index, proof, note };
}

function canonical(value) {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
}

function parseEntry(bytes, index) {
  let value;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch {
    fail("the entry is not valid JSON text");
  }
  const fields = ["actor", "body", "prev", "seq", "t", "type", "v"];
  if (!value || typeof value !== "object" || Array.isArray(value)
      || Object.keys(value).sort().join(",") !== fields.join(",")) {
    fail("the entry does not have exactly the fields v, seq, prev, t, type, body, actor");
  }
  if (value.v !== "gavel/entry/v1") fail("the entry version is not gavel/entry/v1");
  if (!Number.isSafeInteger(value.seq)) fail("the entry's seq is not an integer");
  if (!equalBytes(encoder.encode(canonical(value)), bytes)) fail("the entry is not in canonical JSON");
  if (value.seq !== index) fail(`the entry is number ${value.seq}, but the receipt is for number ${index}`);
  return value;
}

function parseCheckpointText(text) {
  const lines = text.split("\n");
  if (lines.length < 4 || lines[lines.length - 1] !== "") fail("the checkpoint text is not origin, size and root lines");
  const [origin, sizeText, rootText] = lines;
  if (!origin) fail("the checkpoint has no origin");
  if (!/^(0|[1-9][0-9]{0,18})$/.test(sizeText)) fail("the checkpoint size is not a number");
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size)) fail("the checkpoint size is too large");
  const root = decodeBase64(rootText, "the checkpoint root");
  if (root.length !== 32) fail("the checkpoint root is not 32 bytes");
  return { origin, size, root };
}

function cosignatureMessage(text, timestamp) {
  return encoder.encode(`cosignature/v1\ntime ${timestamp}\n${text}`);
}

function readTimestamp(bytes) {
  let value = 0n;
  for (let i = 0; i < 8; i++) value = (value << 8n) | BigInt(bytes[i]);
  return value;
}

/** RFC 9162 2.1.3.2: the root implied by an inclusion proof (verify.go's decomposition). */
async function rootFromInclusion(index, size, leaf, proof) {
  if (index >= size) fail(`entry ${index} is not in a tree of ${size} entries`);
  // Where the paths to `index` and to `size - 1` diverge (verify.go decompInclProof).
  const xor = BigInt(index) ^ BigInt(size - 1);
  const inner = xor === 0n ? 0 : xor.toString(2).length;
  let border = 0;
  for (let rest = BigInt(index) >> BigInt(inner); rest > 0n; rest >>= 1n) border += Number(rest & 1n);
  if (proof.length !== inner + border) {
    fail(`the proof has ${proof.length} hashes, a tree of ${size} entries needs ${inner + border}`);
  }
  let seed = leaf;
  for (let i = 0; i < inner; i++) {
    seed = (BigInt(index) >> BigInt(i)) & 1n ? await nodeHash(proof[i], seed) : await nodeHash(seed, proof[i]);
  }
  for (let i = inner; i < proof.length; i++) seed = await nodeHash(proof[i], seed);
  return seed;
}

async function verifySignatures(note, checkpoint, policy) {
  const textBytes = encoder.encode(note.text);
  const logKeys = policy.logs.filter((key) => key.name === checkpoint.origin);
  let logSigned = false;
  const cosigned = new Set();
  for (const line of note.signatures) {
    const logKey = logKeys.find((key) => key.name === line.name && equalBytes(key.id, line.id));
    if (logKey) {
      if (!(await ed25519Verify(logKey.publicKey, line.signature, textBytes))) {
        fail(`the log signature of ${line.name} does not verify`);
      }
      logSigned = true;
      continue;
    }
    const witness = policy.witnesses.find((w) => w.key.name === line.name && equalBytes(w.key.id, line.id));
    if (!witness) continue; // a signature from a key the policy does not name is ignored
    if (line.signature.length !== 72) fail(`the cosignature of notary ${witness.name} is not 72 bytes`);
    const timestamp = readTimestamp(line.signature);
    const ok = await ed25519Verify(witness.key.publicKey, line.signature.slice(8),
      cosignatureMessage(note.text, timestamp));
    if (!ok) fail(`the cosignature of notary ${witness.name} does not verify`);
    cosigned.add(witness.name);
  }
  if (!logSigned) fail(`no signature by the log key ${checkpoint.origin}`);
  return cosigned;
}

/**
 * Verify a receipt. `receiptBytes`: the tlog-proof (Uint8Array or string); `entryBytes`: the
 * entry (Uint8Array); `policyText`: the tlog-policy served at /log/policy. Returns
 * {index, size, origin, notaries: [names], entry} or throws ReceiptError.
 */
export async function verifyReceipt(receiptBytes, entryBytes, policyText) {
  let step = 1;
  try {
    const bytes = typeof receiptBytes === "string" ? encoder.encode(receiptBytes) : new Uint8Array(receiptBytes);
    const receipt = parseReceipt(bytes);

    step = 2;
    const entryView = new Uint8Array(entryBytes);
    const entry = parseEntry(entryView, receipt.index);
    const leaf = await leafHash(entryView);

    step = 3;
    const policy = await parsePolicy(policyText);
    const checkpoint = parseCheckpointText(receipt.note.text);
    if (!policy.logs.some((key) => key.name === checkpoint.origin)) {
      fail(`the policy trusts no log named ${checkpoint.origin}`);
    }

    step = 4;
    const cosigned = await verifySignatures(receipt.note, checkpoint, policy);

    step = 5;
    if (!ruleMet(policy.quorum, cosigned)) fail(quorumShortfall(policy.quorum, cosigned));

    step = 6;
    const root = await rootFromInclusion(receipt.index, checkpoint.size, leaf, receipt.proof);
    if (!equalBytes(root, checkpoint.root)) fail("the proof does not lead to the checkpoint's root hash");

    return {
      index: receipt.index, size: checkpoint.size, origin: checkpoint.origin,
      notaries: Array.from(cosigned).sort(), entry,
    };
  } catch (error) {
    if (error instanceof Failure) throw new ReceiptError(step, error.message);
    throw new ReceiptError(step, (error && error.message) || "unexpected error");
  }
}

/**
 * Verify a published checkpoint (GET /log/checkpoint) against the policy: steps 3 to 5.
 * Returns {origin, size, root (base64), notaries} or throws ReceiptError.
 */
export async function verifyCheckpoint(checkpointBytes, policyText) {
  let step = 3;
  try {
    const bytes = typeof checkpointBytes === "string" ? encoder.encode(checkpointBytes) : new Uint8Array(checkpointBytes);
    const note = parseNote(bytes);
    const policy = await parsePolicy(policyText);
    const checkpoint = parseCheckpointText(note.text);
    if (!policy.logs.some((key) => key.name === checkpoint.origin)) {
      fail(`the policy trusts no log named ${checkpoint.origin}`);
    }
    step = 4;
    const cosigned = await verifySignatures(note, checkpoint, policy);
    step = 5;
    if (!ruleMet(policy.quorum, cosigned)) fail(quorumShortfall(policy.quorum, cosigned));
    return {
      origin: checkpoint.origin, size: checkpoint.size, root: btoa(String.fromCharCode(...checkpoint.root)),
      notaries: Array.from(cosigned).sort(),
    };
  } catch (error) {
    if (error instanceof Failure) throw new ReceiptError(step, error.message);
    throw new ReceiptError(step, (error && error.message) || "unexpected error");
  }
}

/** One sentence for the result of verifyReceipt (success) or its error. */
export function describeResult(result) {
  if (result instanceof ReceiptError) return result.message;
  if (result instanceof Error) return `Verification failed: ${result.message}`;
  return `Verified: entry ${result.index} is in the ledger of ${result.size} entries signed by `
    + `${result.origin} and co-signed by ${result.notaries.length ? result.notaries.join(", ") : "no notary (the policy requires none)"}.`;
}

/** Verify a receipt as served by GET /log/receipt/{seq}: {seq, size, entry (base64), proof}. */
export async function verifyServedReceipt(body, policyText) {
  let entryBytes;
  try {
    entryBytes = Uint8Array.from(atob(body.entry), (c) => c.charCodeAt(0));
  } catch {
    throw new ReceiptError(1, "the receipt's entry is not base64");
  }
  if (typeof body.proof !== "string") throw new ReceiptError(1, "the receipt has no proof");
  return verifyReceipt(body.proof, entryBytes, policyText);
}
