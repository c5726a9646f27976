// The console's camera: the browser's camera published as a lot's video over WebRTC
// (docs/protocol.md, "Publishing a camera"). The server takes the video track as the lot's
// source and burns the lot's state into it; the page keeps a muted preview.

import { api } from "./api.js";

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

/** Publish the camera on `lotId` with the staff `token`; returns { stream, stop() }. */
export async function publishCamera(lotId, token, preview) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error("this browser cannot use a camera here (it needs https or localhost)");
  }
  const lot = encodeURIComponent(lotId);
  const status = await api(`/api/lots/${lot}/stream`);
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } },
    audio: false,
  });
  const pc = new RTCPeerConnection({ iceServers: (status && status.ice_servers) || [] });
  const stop = () => {
    for (const track of stream.getTracks()) track.stop();
    pc.close();
    if (preview) preview.srcObject = null;
  };
  try {
    for (const track of stream.getVideoTracks()) pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringComplete(pc, 3000);
    const answer = await api(`/api/lots/${lot}/stream/publish`, {
      method: "POST",
      body: { sdp: pc.localDescription.sdp, type: pc.localDescription.type },
      token,
    });
    await pc.setRemoteDescription(answer);
  } catch (error) {
    stop();
    throw error;
  }
  if (preview) preview.srcObject = stream;
  return { stream, pc, stop };
}
