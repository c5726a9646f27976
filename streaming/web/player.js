// Gavel lot-room video player (ES module), served at /stream/static/player.js.
//
//   import { attachStream } from "/stream/static/player.js";
//   const stream = await attachStream(videoElement, lotId, {
//     rendition: "360p",                       // or "720p"; default: the server's default
//     iceServers: [...],                       // default: the server's client_ice_servers
//     serverOffsetMs: () => clockOffsetMs,     // server time − Date.now(), from the page's
//                                              // NTP-like sync (rules C15); 0 if same host
//     onBehind: (seconds, info) => { ... },    // "video is N s behind" (rules C14.4)
//     onMetadata: (meta) => { ... },           // timed metadata: lot_id, seq, ask,
//                                              // leader_code, phase, server_ts, frame_ts
//   });
//   await stream.switchRendition("720p");
//   stream.close();
//
// How "behind" is known: the server burns the capture time (server UTC ms, mod 2^32) into the
// bottom rows of every frame as 36 black/white blocks (guards 1 0, 32 bits MSB first,
// guards 0 1; block width = height / 30). For the frame on screen, behind = server now −
// capture time. For a stream without that strip (a file passed through) the browser's
// requestVideoFrameCallback captureTime is used when it has one.

const STRIP_BLOCKS = 36;
const BLOCKS_PER_HEIGHT = 30;
const METADATA_CHANNEL = "gavel-meta";

export class StreamError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Decode the clock strip from luma samples at the 36 block centres; null if absent. */
export function decodeStrip(samples, referenceMs) {
  if (samples.length !== STRIP_BLOCKS) return null;
  const bits = samples.map((s) => (s >= 128 ? 1 : 0));
  if (bits[0] !== 1 || bits[1] !== 0 || bits[34] !== 0 || bits[35] !== 1) return null;
  let value = 0;
  for (let i = 2; i < 34; i++) value = value * 2 + bits[i];
  const wrap = 2 ** 32;
  const base = referenceMs - (referenceMs % wrap);
  let best = null;
  for (const candidate of [base - wrap + value, base + value, base + wrap + value]) {
    if (best === null || Math.abs(candidate - referenceMs) < Math.abs(best - referenceMs)) {
      best = candidate;
    }
  }
  return best;
}

/** Read the capture time (server ms) of the frame the video element shows, or null. */
export function readStrip(video, canvas, referenceMs) {
  const width = video.videoWidth;
  const height = video.videoHeight;
  if (!width || !height) return null;
  const block = height / BLOCKS_PER_HEIGHT;
  const rows = Math.max(1, Math.floor(block / 2));
  if (canvas.width !== width || canvas.height !== rows) {
    canvas.width = width;
    canvas.height = rows;
  }
  const context = canvas.getContext("2d", { willReadFrequently: true });
  // the middle of the strip's rows: away from the block edges the encoder blurs
  const top = height - Math.max(1, Math.floor(block / 4)) - Math.floor(rows / 2);
  context.drawImage(video, 0, top, width, rows, 0, 0, width, rows);
  const pixels = context.getImageData(0, Math.floor(rows / 2), width, 1).data;
  const samples = [];
  for (let i = 0; i < STRIP_BLOCKS; i++) {
    const x = Math.min(width - 1, Math.floor((i + 0.5) * block));
    const r = pixels[4 * x];
    const g = pixels[4 * x + 1];
    const b = pixels[4 * x + 2];
    samples.push(0.299 * r + 0.587 * g + 0.114 * b);
  }
  return decodeStrip(samples, referenceMs);
}

async function gatheringComplete(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return;
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

/**
 * Play the lot's stream in `video`. Resolves once the answer is applied (frames follow);
 * rejects with a StreamError carrying the server's {code, message} when the offer is refused
 * (404 unknown lot, 409 not live, ...).
 */
export async function attachStream(video, lotId, options = {}) {
  const {
    rendition = null,
    baseUrl = "",
    iceServers = null, // null: use the server's `ice_servers` (GET /api/lots/{id}/stream)
    serverOffsetMs = () => 0,
    onBehind = null,
    onMetadata = null,
    behindIntervalMs = 500,
    measureLatency = false,
    gatherTimeoutMs = 3000,
  } = options;

  let servers = iceServers;
  if (servers === null) {
    const status = await fetch(`${baseUrl}/api/lots/${encodeURIComponent(lotId)}/stream`);
    const body = await status.json().catch(() => ({}));
    if (!status.ok) {
      const error = body.error || {};
      throw new StreamError(status.status, error.code || "error", error.message || "refused");
    }
    servers = body.ice_servers || [];
  }
  const pc = new RTCPeerConnection({ iceServers: servers });
  pc.addTransceiver("video", { direction: "recvonly" });
  const channel = pc.createDataChannel(METADATA_CHANNEL);
  const canvas = document.createElement("canvas");
  const states = []; // timed metadata, oldest first (bounded)
  const stats = {
    frames: 0,
    rendition,
    behindSeconds: null,
    captureMs: null,
    shownSeq: null,
    latenciesMs: [],
    metadata: null,
  };
  let closed = false;
  let lastBehindAt = 0;
  let pendingSwitch = null;

  channel.onmessage = (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message.type === "state") {
      stats.metadata = message;
      states.push(message);
      if (states.length > 64) states.shift();
      if (onMetadata) onMetadata(message);
    } else if (message.type === "rendition") {
      stats.rendition = message.name;
      if (pendingSwitch) {
        pendingSwitch.resolve(message);
        pendingSwitch = null;
      }
    }
  };

  pc.ontrack = (event) => {
    video.srcObject = event.streams[0] || new MediaStream([event.track]);
  };

  function shownSeq(captureMs) {
    let seq = null;
    for (const state of states) {
      if (state.frame_ts !== null && state.frame_ts <= captureMs) seq = state.seq;
    }
    return seq;
  }

  function onFrame(now, meta) {
    if (closed) return;
    stats.frames += 1;
    const nowServer = Date.now() + serverOffsetMs();
    const due = measureLatency || now - lastBehindAt >= behindIntervalMs;
    if (due) {
      const captureMs = readStrip(video, canvas, nowServer);
      if (captureMs !== null) {
        if (measureLatency) {
          // capture -> display, same host clock: no sync needed
          const displayMs = performance.timeOrigin + meta.expectedDisplayTime;
          stats.latenciesMs.push(displayMs - captureMs);
          if (stats.latenciesMs.length > 2000) stats.latenciesMs.shift();
        }
        if (now - lastBehindAt >= behindIntervalMs) {
          lastBehindAt = now;
          stats.captureMs = captureMs;
          stats.behindSeconds = Math.max(0, (nowServer - captureMs) / 1000);
          stats.shownSeq = shownSeq(captureMs);
          if (onBehind) onBehind(stats.behindSeconds, { captureMs, shownSeq: stats.shownSeq });
        }
      } else if (meta.captureTime !== undefined && now - lastBehindAt >= behindIntervalMs) {
        lastBehindAt = now;
        stats.behindSeconds = Math.max(0, (meta.expectedDisplayTime - meta.captureTime) / 1000);
        if (onBehind) onBehind(stats.behindSeconds, { captureMs: null, shownSeq: null });
      }
    }
    video.requestVideoFrameCallback(onFrame);
  }
  video.requestVideoFrameCallback(onFrame);

  await pc.setLocalDescription(await pc.createOffer());
  await gatheringComplete(pc, gatherTimeoutMs);
  const query = rendition ? `?rendition=${encodeURIComponent(rendition)}` : "";
  const response = await fetch(
    `${baseUrl}/api/lots/${encodeURIComponent(lotId)}/stream/offer${query}`,
    {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sdp: pc.localDescription.sdp, type: "offer" }),
    },
  );
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    pc.close();
    const error = body.error || {};
    throw new StreamError(response.status, error.code || "error", error.message || "refused");
  }
  await pc.setRemoteDescription(body);

  return {
    pc,
    stats,
    /** Ask the server for another rendition (same connection; next keyframe). */
    switchRendition(name, timeoutMs = 5000) {
      if (channel.readyState !== "open") {
        return Promise.reject(new Error("the metadata channel is not open yet"));
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no answer to the switch")), timeoutMs);
        pendingSwitch = {
          resolve: (message) => {
            clearTimeout(timer);
            resolve(message);
          },
        };
        channel.send(JSON.stringify({ type: "rendition", name }));
      });
    },
    close() {
      closed = true;
      pc.close();
      video.srcObject = null;
    },
  };
}
