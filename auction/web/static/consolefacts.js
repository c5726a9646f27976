// The console's lot facts: the text buyers read (PUT /api/console/lots/{lot}/facts) and the
// pictures and court documents (POST /api/console/lots/{lot}/documents, the file as the raw
// body), each recorded in the ledger by its SHA-256. Works on the lot chosen in console.js's
// "Control a lot" list.

import { api, ApiError, errorWords } from "./api.js";
import { byId, el, say } from "./util.js";

const TOKEN_KEY = "gavel-console-token";
const LIMITS = { picture: 4 * 1024 * 1024, document: 8 * 1024 * 1024 };
const FIELDS = {
  property_kind: "facts-property", address: "facts-address", area: "facts-area",
  description: "facts-description", priority_notice: "facts-priority",
};
const KIND_WORDS = {
  picture: "Picture", announcement: "Court's announcement", notice: "Bidding notice",
  appraisal_report: "Appraisal report",
};

function token() {
  return new URLSearchParams(location.hash.slice(1)).get("token") || sessionStorage.getItem(TOKEN_KEY);
}

function lot() {
  return byId("lot").value;
}

function lotPath() {
  return `/api/console/lots/${encodeURIComponent(lot())}`;
}

function showDocuments(body) {
  const items = [...(body.pictures || []), ...(body.documents || [])];
  byId("upload-list").replaceChildren(...items.map((item) => el("li", {},
    `${KIND_WORDS[item.kind] || "Document"}: `,
    el("a", { href: item.url }, item.name),
    ` · ledger entry ${item.entry} · SHA-256 `,
    el("code", { className: "mono", text: item.sha256 }))));
}

async function loadFacts() {
  if (!lot()) return;
  shown = lot();
  try {
    const body = await api(`/api/lots/${encodeURIComponent(lot())}/facts`);
    for (const [field, id] of Object.entries(FIELDS)) byId(id).value = (body.facts || {})[field] || "";
    showDocuments(body);
  } catch (error) {
    say(byId("facts-result"), `The facts could not be loaded: ${errorWords(error)}`, "error");
  }
}

async function saveFacts(event) {
  event.preventDefault();
  if (!lot()) return say(byId("facts-result"), "Choose a lot first.", "error");
  const body = {};
  for (const [field, id] of Object.entries(FIELDS)) body[field] = byId(id).value;
  try {
    await api(`${lotPath()}/facts`, { method: "PUT", body, token: token() });
    say(byId("facts-result"), `Saved the facts of ${lot()}.`, "ok");
  } catch (error) {
    say(byId("facts-result"), `The facts were not saved: ${errorWords(error)}`, "error");
  }
}

async function upload() {
  const file = byId("upload-file").files[0];
  const kind = byId("upload-kind").value;
  const result = byId("upload-result");
  if (!lot()) return say(result, "Choose a lot first.", "error");
  if (!file) return say(result, "Choose a file to upload.", "error");
  const limit = kind === "picture" ? LIMITS.picture : LIMITS.document;
  if (file.size > limit) {
    return say(result, `${file.name} has ${file.size.toLocaleString("en-US")} bytes; at most ${limit.toLocaleString("en-US")} are accepted.`, "error");
  }
  say(result, `Uploading ${file.name}…`);
  const query = new URLSearchParams({ kind, name: file.name });
  try {
    const response = await fetch(`${lotPath()}/documents?${query}`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token()}`, "Content-Type": file.type || "application/octet-stream" },
      body: file,
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const error = body && body.error;
      throw new ApiError(response.status, error ? error.code : "HTTP", error && error.message ? `${error.message.charAt(0).toUpperCase()}${error.message.slice(1)}.` : "The upload was refused.");
    }
    const stored = body.document;
    say(result, `Recorded ${stored.name} in ledger entry ${stored.entry} (SHA-256 ${stored.sha256}).`, "ok");
    byId("upload-file").value = "";
    loadFacts();
  } catch (error) {
    say(result, `The upload failed: ${errorWords(error)}`, "error");
  }
}

byId("facts-form").addEventListener("submit", saveFacts);
byId("upload-button").addEventListener("click", upload);
byId("lot").addEventListener("change", loadFacts);
// console.js fills (and refreshes) the lot list: load the facts when the chosen lot changes.
let shown = null;
new MutationObserver(() => {
  if (lot() && lot() !== shown) loadFacts();
}).observe(byId("lot"), { childList: true });
