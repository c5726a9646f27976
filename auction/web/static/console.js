// The auctioneer console: the token comes from "#token=" in the address and is sent as
// "Authorization: Bearer". Creates lots from presets and sends engine commands
// (POST /api/console/lots/{lot}/commands); shows the chosen lot live over the websocket.

import { api, errorWords, setBearer } from "./api.js";
import { publishCamera } from "./camera.js";
import { installConsoleRing } from "./console-ring.js";
import { amountInputText, formatMoney, parseAmount } from "./money.js";
import { bidderWords, byId, el, FORMAT_NAMES, say, statusWords } from "./util.js";
import { GavelSocket } from "./ws.js";

const MINUTE_US = 60_000_000;
const COMMAND_WORDS = {
  OpenLot: "Open", Pause: "Pause", Resume: "Resume", Cancel: "Cancel", OpenRing: "Open the ring",
  SetAsk: "Set the ask", SetIncrement: "Set the increment", FloorBid: "Floor bid",
  FairWarning: "Fair warning", Hammer: "Hammer", PassLot: "Pass", UndoLastBid: "Undo last bid",
  SetAutoAccept: "Auto-accept",
};

const TOKEN_KEY = "gavel-console-token";
const token = new URLSearchParams(location.hash.slice(1)).get("token") || sessionStorage.getItem(TOKEN_KEY);
const views = new Map();
let socket = null;
let serverNowUs = null;
let ring = null; // the live ring's queue, bidders, video and hammer confirmation (console-ring.js)

function selectedLot() {
  return byId("lot").value;
}

function selectedView() {
  return views.get(selectedLot()) || null;
}

function log(words, kind = "info") {
  const item = el("li", { "data-kind": kind, text: `${new Date().toLocaleTimeString("en-GB")} · ${words}` });
  byId("log").prepend(item);
}

function renderSelected() {
  const view = selectedView();
  const fields = ["lot-state", "lot-price", "lot-ask", "lot-leader", "lot-bids"];
  if (ring) ring.onView(view);
  if (!view) {
    for (const id of fields) byId(id).textContent = "—";
    return;
  }
  byId("lot-state").textContent = `${statusWords(view)} (${FORMAT_NAMES[view.format] || view.format})`;
  byId("lot-price").textContent = view.price === null || view.price === undefined ? "no bid yet" : formatMoney(view.price, view.currency);
  byId("lot-ask").textContent = formatMoney(view.min_next, view.currency);
  byId("lot-leader").textContent = bidderWords(view.leader_code) || "—";
  byId("lot-bids").textContent = String(view.bids ?? 0);
  const ask = byId("ask");
  if (!ask.value || ask.dataset.auto === "1") {
    ask.value = amountInputText(view.min_next, view.currency);
    ask.dataset.auto = "1";
  }
}

function renderLotOptions() {
  const select = byId("lot");
  const current = select.value;
  const options = [...views.values()]
    .sort((a, b) => a.lot_id.localeCompare(b.lot_id))
    .map((view) => el("option", { value: view.lot_id, selected: view.lot_id === current },
      `${view.title} · ${statusWords(view)} · ${view.lot_id}`));
  select.replaceChildren(...options);
  if (current && views.has(current)) select.value = current;
  renderSelected();
}

async function loadLots() {
  const body = await api("/api/lots");
  serverNowUs = body.now_us ?? body.now ?? null;
  for (const view of body.lots || []) views.set(view.lot_id, view);
  renderLotOptions();
  if (socket) for (const id of views.keys()) socket.subscribe(id);
}

function amountFrom(inputId) {
  const view = selectedView();
  return parseAmount(byId(inputId).value, view ? view.currency : "USD");
}

function describeAnswer(answer) {
  const events = (answer && answer.events) || [];
  const rejected = events.find((event) => event.type === "Rejected" || event.type === "CommandRejected");
  if (rejected) return [`refused: ${rejected.message || rejected.reason_text || String(rejected.reason || "").toLowerCase().replace(/_/g, " ")}`, "error"];
  return ["done", "ok"];
}

async function send(command, resultId) {
  const lot = selectedLot();
  const result = byId(resultId);
  if (!lot) return say(result, "Choose a lot first.", "error");
  const name = COMMAND_WORDS[command.type] || command.type;
  try {
    const answer = await api(`/api/console/lots/${encodeURIComponent(lot)}/commands`, { method: "POST", body: command });
    if (answer && answer.lot && typeof answer.lot === "object") {
      views.set(lot, answer.lot);
      renderSelected();
    }
    const [words, kind] = describeAnswer(answer);
    say(result, `${name}: ${words}.`, kind);
    log(`${lot}: ${name} — ${words}`, kind);
  } catch (error) {
    say(result, `${name} failed: ${errorWords(error)}`, "error");
    log(`${lot}: ${name} failed — ${errorWords(error)}`, "error");
  }
}

function withReason(type, resultId) {
  const reason = byId("reason").value.trim();
  if (!reason) {
    say(byId(resultId), `${COMMAND_WORDS[type] || type} needs a reason: type it in the reason field.`, "error");
    byId("reason").focus();
    return null;
  }
  return { type, reason };
}

async function createLot(event) {
  event.preventDefault();
  const result = byId("create-result");
  const preset = byId("preset").value;
  const currency = byId("create-currency").value;
  const title = byId("create-title").value.trim();
  if (!title) return say(result, "Give the lot a title.", "error");
  let startPrice;
  let step = null;
  try {
    startPrice = parseAmount(byId("create-price").value, currency);
    if (preset === "JUDICIAL_CN") step = parseAmount(byId("create-step").value, currency);
  } catch (error) {
    return say(result, errorWords(error), "error");
  }
  const startMinutes = Number(byId("create-start").value || 0);
  const duration = Number(byId("create-duration").value || 60);
  if (!(startMinutes >= 0) || !(duration >= 1)) return say(result, "Enter when the lot starts and how long it runs, in minutes.", "error");
  const now = serverNowUs ?? Date.now() * 1000;
  const startAt = Math.round(now + startMinutes * MINUTE_US);
  const lotId = byId("create-lot").value.trim() || slug(title);
  const parameters = { currency, start_price: startPrice, start_at: startAt };
  if (preset !== "LIVE_AUCTIONEER") parameters.end_at = Math.round(startAt + duration * MINUTE_US);
  if (step !== null) parameters.step = step;
  if (ring) parameters.legal_timezone = ring.timeZone();
  const body = { preset, lot: lotId, title, parameters };
  try {
    const created = await api("/api/console/lots", { method: "POST", body });
    const view = created && created.lot && typeof created.lot === "object" ? created.lot : null;
    if (view && view.lot_id) views.set(view.lot_id, view);
    await loadLots();
    if (view && view.lot_id) {
      byId("lot").value = view.lot_id;
      renderSelected();
      if (socket) socket.subscribe(view.lot_id);
    }
    say(result, `Created ${title}${view && view.lot_id ? ` (${view.lot_id})` : ""}.`, "ok");
    log(`created ${title}`, "ok");
  } catch (error) {
    say(result, `The lot could not be created: ${errorWords(error)}`, "error");
  }
}

/** A lot id from a title: "Flat 1502, Hangzhou" → "flat-1502-hangzhou-k3f9". */
function slug(title) {
  const base = title.toLowerCase().normalize("NFKD").replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 40);
  const suffix = Math.random().toString(36).slice(2, 6);
  return `${base || "lot"}-${suffix}`;
}

function presetChanged() {
  const preset = byId("preset").value;
  byId("step-field").hidden = preset !== "JUDICIAL_CN";
  byId("duration-field").hidden = preset === "LIVE_AUCTIONEER";
  if (preset === "JUDICIAL_CN") byId("create-currency").value = "CNY";
}

function disarm(button) {
  delete button.dataset.armed;
  button.textContent = "Cancel lot";
}

/** The closed lot's evidence package (GET /api/console/lots/{lot}/evidence), saved as a file. */
async function downloadEvidence() {
  const lot = selectedLot();
  const result = byId("evidence-result");
  if (!lot) return say(result, "Choose a lot first.", "error");
  say(result, `Building the evidence package of ${lot}…`);
  let response;
  try {
    response = await fetch(`/api/console/lots/${encodeURIComponent(lot)}/evidence?format=zip`, {
      headers: { Authorization: `Bearer ${token}` }, cache: "no-store",
    });
  } catch {
    return say(result, "The server could not be reached. Check your connection.", "error");
  }
  if (!response.ok) {
    let words = `The server answered with an error (${response.status}).`;
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) words = body.error.message;
    } catch {
      // keep the generic words
    }
    return say(result, `No evidence package for ${lot}: ${words}`, "error");
  }
  const blob = await response.blob();
  const link = el("a", { href: URL.createObjectURL(blob), download: `evidence-${lot}.zip` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  say(result, `Evidence package of ${lot} saved (${blob.size.toLocaleString("en-GB")} bytes). Check it with: gavel audit evidence`);
  log(`Evidence package of ${lot} downloaded`);
}

function wire() {
  for (const button of document.querySelectorAll("button[data-command]")) {
    const resultId = button.closest("section").querySelector("[role=status]").id;
    button.addEventListener("click", () => {
      const type = button.dataset.command;
      const command = button.dataset.reason ? withReason(type, resultId) : { type };
      if (!command) return;
      if (type === "Cancel" && button.dataset.armed !== selectedLot()) {
        // Two steps: a cancelled lot cannot be reopened.
        button.dataset.armed = selectedLot();
        button.textContent = `Press again to cancel ${selectedLot()} for good`;
        setTimeout(() => disarm(button), 8000);
        return;
      }
      if (type === "Cancel") disarm(button);
      if (type === "Hammer" && ring) return ring.confirmHammer(() => send(command, resultId));
      send(command, resultId);
    });
  }
  byId("open-ring").addEventListener("click", () => {
    try {
      send({ type: "OpenRing", ask: amountFrom("ask") }, "ring-result");
    } catch (error) {
      say(byId("ring-result"), errorWords(error), "error");
    }
  });
  byId("set-ask").addEventListener("click", () => {
    try {
      send({ type: "SetAsk", ask: amountFrom("ask") }, "ring-result");
    } catch (error) {
      say(byId("ring-result"), errorWords(error), "error");
    }
  });
  byId("set-increment").addEventListener("click", () => {
    try {
      send({ type: "SetIncrement", increment: { type: "Fixed", step: amountFrom("increment") } }, "ring-result");
    } catch (error) {
      say(byId("ring-result"), errorWords(error), "error");
    }
  });
  byId("floor-bid").addEventListener("click", () => {
    const paddle = byId("paddle").value.trim();
    if (!paddle) return say(byId("ring-result"), "Enter the floor bidder's paddle number.", "error");
    send({ type: "FloorBid", paddle }, "ring-result");
  });
  byId("auto-accept").addEventListener("change", (event) => {
    send({ type: "SetAutoAccept", on: event.target.checked }, "ring-result");
  });
  byId("ask").addEventListener("input", () => {
    byId("ask").dataset.auto = "0";
  });
  byId("lot").addEventListener("change", () => {
    byId("ask").dataset.auto = "1";
    renderSelected();
  });
  byId("evidence").addEventListener("click", downloadEvidence);
  byId("preset").addEventListener("change", presetChanged);
  byId("create-form").addEventListener("submit", createLot);
  presetChanged();
}

// ---------------------------------------------------------------- video

const SOURCE_WORDS = {
  presentation: "the lot's presentation",
  pattern: "the test picture",
  file: "a video file",
  camera: "a camera",
};
let camera = null;

function videoRoute(lot) {
  return `/api/console/lots/${encodeURIComponent(lot)}/video`;
}

function renderVideo(body) {
  const stream = body.stream;
  const rate = body.rate ? ` · ${body.rate.height}p at ${body.rate.fps} frames a second` : "";
  let state = "not on air (it streams while the lot is open)";
  if (stream && stream.live) {
    const viewers = `${stream.viewers} watching`;
    const recording = stream.recording ? ", recorded" : "";
    state = `on air${rate} · ${viewers}${recording}${stream.camera ? " · camera connected" : ""}`;
  }
  byId("video-state").textContent = state;
  const source = body.source || {};
  byId("video-showing").textContent = source.kind === "file" ? `the file ${source.file}` : SOURCE_WORDS[source.kind] || "—";
  byId("video-source").value = source.kind || "presentation";
  const files = body.files || [];
  const select = byId("video-file");
  select.replaceChildren(...files.map((name) => el("option", { value: name, selected: name === source.file }, name)));
  if (!files.length) select.append(el("option", { value: "" }, "no video file in the media folder yet"));
  byId("video-file-field").hidden = byId("video-source").value !== "file";
}

async function loadVideo() {
  const lot = selectedLot();
  if (!lot) return;
  try {
    renderVideo(await api(videoRoute(lot)));
  } catch (error) {
    say(byId("video-result"), `The video settings could not be read: ${errorWords(error)}`, "error");
  }
}

async function applyVideo() {
  const lot = selectedLot();
  const result = byId("video-result");
  if (!lot) return say(result, "Choose a lot first.", "error");
  const kind = byId("video-source").value;
  const body = { source: kind };
  if (kind === "file") {
    body.file = byId("video-file").value;
    if (!body.file) return say(result, "Put a video file in the media folder or upload one first.", "error");
  }
  try {
    renderVideo(await api(videoRoute(lot), { method: "PUT", body }));
    const what = kind === "file" ? `the file ${body.file}` : SOURCE_WORDS[kind];
    const next = kind === "camera" && !camera
      ? " Start this browser's camera, or have the camera operator open this console and start theirs; until then the lot shows its own picture."
      : "";
    say(result, `${lot} now shows ${what}.${next}`, "ok");
    log(`${lot}: video shows ${what}`, "ok");
  } catch (error) {
    say(result, `The video could not be changed: ${errorWords(error)}`, "error");
  }
}

async function uploadVideo() {
  const lot = selectedLot();
  const result = byId("video-result");
  const file = byId("video-upload").files[0];
  if (!lot) return say(result, "Choose a lot first.", "error");
  if (!file) return say(result, "Choose a video file to upload.", "error");
  say(result, `Uploading ${file.name} (${Math.round(file.size / 1024)} KiB)…`, "info");
  try {
    const body = await api(`${videoRoute(lot)}/file?name=${encodeURIComponent(file.name)}`, { method: "POST", raw: file });
    renderVideo(body);
    say(result, `${file.name} arrived and ${lot} now shows it.`, "ok");
    log(`${lot}: video shows the uploaded ${file.name}`, "ok");
  } catch (error) {
    say(result, `The file was not used: ${errorWords(error)}`, "error");
  }
}

async function startCamera() {
  const lot = selectedLot();
  const result = byId("video-result");
  if (!lot) return say(result, "Choose a lot first.", "error");
  try {
    if (camera) camera.stop();
    camera = await publishCamera(lot, token, byId("camera-preview"));
    byId("camera-preview").hidden = false;
    byId("camera-stop").hidden = false;
    say(result, `Your camera is on air on ${lot}, with the lot's price and time left burned in.`, "ok");
    log(`${lot}: camera on air`, "ok");
    setTimeout(loadVideo, 1500);
  } catch (error) {
    camera = null;
    say(result, `The camera could not be started: ${errorWords(error)}`, "error");
  }
}

function stopCamera() {
  if (camera) camera.stop();
  camera = null;
  byId("camera-preview").hidden = true;
  byId("camera-stop").hidden = true;
  say(byId("video-result"), "Camera stopped; the lot shows its own picture again.", "ok");
  setTimeout(loadVideo, 2500);
}

function wireVideo() {
  byId("video-source").addEventListener("change", () => {
    byId("video-file-field").hidden = byId("video-source").value !== "file";
  });
  byId("video-apply").addEventListener("click", applyVideo);
  byId("video-upload-button").addEventListener("click", uploadVideo);
  byId("camera-start").addEventListener("click", startCamera);
  byId("camera-stop").addEventListener("click", stopCamera);
  byId("lot").addEventListener("change", loadVideo);
}

async function start() {
  ring = installConsoleRing({
    selectedLot, selectedView, log,
    setView(view) {
      views.set(view.lot_id, view);
      if (view.lot_id === selectedLot()) renderSelected();
    },
  });
  wire();
  wireVideo();
  if (!token) {
    say(byId("status"), "This console needs the auctioneer link printed by the server when it started (it ends in #token=…).", "error");
    for (const button of document.querySelectorAll("button")) button.disabled = true;
    return;
  }
  setBearer(token);
  sessionStorage.setItem(TOKEN_KEY, token); // this tab keeps it across reloads
  history.replaceState(null, "", location.pathname); // keep the token out of the visible address
  try {
    await loadLots();
    await loadVideo();
  } catch (error) {
    say(byId("status"), `The lots could not be loaded: ${errorWords(error)}`, "error");
  }
  socket = new GavelSocket({
    onMessage(message) {
      if ((message.type === "snapshot" || message.type === "update") && message.view) {
        const known = views.get(message.lot);
        if (!known || (message.view.seq ?? 0) >= (known.seq ?? 0)) {
          const isNew = !known;
          views.set(message.lot, message.view);
          socket.applied(message.lot, message.seq);
          if (isNew) renderLotOptions();
          else if (message.lot === selectedLot()) renderSelected();
          if (message.type === "update" && message.lot === selectedLot()) ring.onUpdate();
        }
      }
    },
    onStatus(state, words) {
      if (state !== "open") say(byId("status"), words, state === "closed" ? "error" : "warn");
      else say(byId("status"), "");
    },
  });
  for (const id of views.keys()) socket.subscribe(id);
  socket.connect();
}

start();
