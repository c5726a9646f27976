// The lot room's "Your lot" panel: the bidder's state on this lot as the server keeps it
// (GET /api/me/lots/{lot}), so a reload or a later visit, from this or another browser logged
// into the account, shows the same bids, receipts, deposit and outcome. lot.js calls
// mountMine() once and passes it every websocket message; this module refetches on the
// messages that can change the bidder's state (a bid, a close, a deposit, an ack).

import { api, ApiError, errorWords, setBearer } from "./api.js";
import { renderSummary } from "./mystate.js";
import { currentSession, SIGNED_ELSEWHERE } from "./session.js";
import { el } from "./util.js";

const REFRESH_DELAY_MS = 150;
const DOCUMENT_RETRY_MS = 1000;
const DOCUMENT_RETRIES = 30;
const WATCH_EVENTS = new Set(["BidAccepted", "LotClosed", "LotHalted", "LotResumed", "LotCancelled", "BidVoided", "BidUndone", "LotReopened", "BidPending", "BidDeclined"]);

/**
 * options: {lotId, anchor (element after which the panel goes), onSummary(summary)}.
 * Returns {onMessage(message), refresh(), session}.
 */
export async function mountMine(options) {
  const session = await currentSession();
  const panel = el("section", { id: "mine", "aria-labelledby": "mine-panel-heading", hidden: true },
    el("h2", { id: "mine-panel-heading", text: "Your lot" }));
  const body = el("div", { id: "mine-body" });
  const note = el("p", { id: "mine-note", role: "status" });
  panel.append(note, body);
  const anchor = options.anchor || document.querySelector("main");
  if (anchor && anchor.parentNode) anchor.after(panel);
  let timer = null;
  let retries = 0;
  let leader = undefined;
  let status = undefined;
  const handle = { session, onMessage() {}, refresh() {} };
  if (!session) return handle;
  if (!session.canSign) {
    // This browser watches the account: it has no key and sets the bearer itself.
    setBearer(session.session);
    note.textContent = SIGNED_ELSEWHERE;
    note.dataset.kind = "warn";
    const bidMessage = document.getElementById("bid-message");
    if (bidMessage) bidMessage.textContent = `You are signed in as a watcher. ${SIGNED_ELSEWHERE}`;
  }

  async function refresh() {
    timer = null;
    let summary;
    try {
      const answer = await api(`/api/me/lots/${encodeURIComponent(options.lotId)}`, { token: session.session });
      summary = answer.lot;
    } catch (error) {
      if (error instanceof ApiError && (error.code === "NOT_REGISTERED" || error.status === 404)) {
        panel.hidden = !session.canSign ? false : true;
        if (!session.canSign) body.replaceChildren(el("p", { className: "muted", text: "Your account has not registered for this lot." }));
        return;
      }
      panel.hidden = false;
      body.replaceChildren(el("p", { "data-kind": "error", text: `Your state on this lot could not be loaded: ${errorWords(error)}` }));
      return;
    }
    panel.hidden = false;
    body.replaceChildren(renderSummary(summary, { session, canSign: session.canSign }));
    if (options.onSummary) options.onSummary(summary);
    const waitingForDocument = summary.standing === "won"
      && (!summary.documents.length || summary.documents.some((d) => !Number.isSafeInteger(d.entry)));
    if (waitingForDocument && retries < DOCUMENT_RETRIES) {
      retries += 1;
      later(DOCUMENT_RETRY_MS);
    }
  }

  function later(delay = REFRESH_DELAY_MS) {
    if (timer) return;
    timer = setTimeout(refresh, delay);
  }

  handle.refresh = () => later();
  handle.onMessage = (message) => {
    if (message.type === "ack" || message.type === "deposit") {
      if (!message.lot || message.lot === options.lotId) later();
      return;
    }
    if (message.type !== "update" && message.type !== "snapshot") return;
    if (message.lot && message.lot !== options.lotId) return;
    const view = message.view || {};
    const moved = view.leader_code !== leader || view.status !== status;
    leader = view.leader_code;
    status = view.status;
    const events = message.events || [];
    if (moved || events.some((event) => WATCH_EVENTS.has(event.type))) later();
  };
  await refresh();
  return handle;
}
