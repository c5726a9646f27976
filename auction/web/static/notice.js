// The money steps before a deposit is frozen (docs/protocol.md §1): the bidder accepts the
// lot's bidding notice (竞买须知; the court's documents of kind "notice" from the lot's facts,
// linked, else a summary in words), which the server records (POST /api/lots/{lot}/notice; a
// deposit without it is refused), then confirms the freeze in words:
// "Freeze CN¥210,000.00 from your account as the deposit for …? [Confirm]".

import { api, errorWords } from "./api.js";
import { amountWordings, formatMoney } from "./money.js";
import { el, formatTime } from "./util.js";

/** What the page says when the lot has no notice document of its own. */
export const NOTICE_POINTS = [
  "The deposit is frozen by the payment provider in your name before you may bid.",
  "If you do not win, the deposit is released when the lot closes and is back on your account within 24 hours.",
  "If you win, the deposit is applied to the price; the balance is due by the deadline of the lot's rules.",
  "A winner who does not pay the balance in time may lose the deposit.",
  "Bids are binding and cannot be withdrawn. A bid in the last minutes extends the end (soft close).",
  "Times are the auction server's times; your bids are signed by this browser and recorded in a public ledger.",
];

/** The lot's bidding notice documents ({name, url, sha256}), from its facts (lot page). */
async function noticeDocuments(lot) {
  try {
    const body = await api(`/api/lots/${encodeURIComponent(lot)}/facts`);
    return ((body && body.documents) || []).filter((d) => d.kind === "notice" && d.url);
  } catch {
    return []; // no notice documents on this server: the points above stand in
  }
}

async function acceptedAt(lot) {
  try {
    const answer = await api(`/api/me/lots/${encodeURIComponent(lot)}`);
    return answer.lot.notice.accepted ? answer.lot.notice.accepted_us : null;
  } catch {
    return null;
  }
}

/**
 * Show the notice and the confirmation under `anchor`; resolves true once the bidder accepted
 * the notice (recorded by the server) and confirmed, false on Cancel.
 * what: {lot, title, amount, currency, timeZone}.
 */
export async function confirmDeposit(anchor, what) {
  const old = document.getElementById("deposit-confirm");
  if (old) old.remove();
  const [accepted, notices] = await Promise.all([acceptedAt(what.lot), noticeDocuments(what.lot)]);
  const money = formatMoney(what.amount, what.currency);
  const confirm = el("button", { type: "button", id: "deposit-confirm-button" }, `Confirm: freeze ${money}`);
  const cancel = el("button", { type: "button", className: "secondary", id: "deposit-cancel-button" }, "Cancel");
  const result = el("p", { id: "deposit-confirm-result", role: "status" });
  const parts = [el("p", { id: "deposit-confirm-title" }, el("strong", { text: "Confirm the deposit" }))];
  let checkbox = null;
  if (accepted === null) {
    checkbox = el("input", { type: "checkbox", id: "notice-accept" });
    const notice = notices.length
      ? el("p", {}, "Read the bidding notice (竞买须知) of this lot: ", ...notices.flatMap((d, i) => [
        i ? ", " : "", el("a", { href: d.url, target: "_blank", rel: "noopener" }, d.name)]), ".")
      : el("div", { className: "notice-text" },
        el("p", { text: "Bidding notice (竞买须知), in short:" }),
        el("ul", {}, ...NOTICE_POINTS.map((point) => el("li", { text: point }))));
    parts.push(notice, el("p", { className: "row" }, checkbox,
      el("label", { for: "notice-accept", className: "inline" }, "I have read and accept the bidding notice (竞买须知) of this lot.")));
    confirm.disabled = true;
    checkbox.addEventListener("change", () => { confirm.disabled = !checkbox.checked; });
  } else {
    parts.push(el("p", { className: "muted", text: `You accepted the bidding notice on ${formatTime(accepted, what.timeZone || "UTC")}.` }));
  }
  parts.push(el("p", { id: "deposit-question", text: `Freeze ${money} from your account as the deposit for ${what.title}?` }),
    el("p", { className: "words", text: amountWordings(what.amount, what.currency).join(" · ") }),
    confirm, cancel, result);
  const panel = el("div", { className: "confirm", id: "deposit-confirm", role: "group", "aria-labelledby": "deposit-confirm-title" }, ...parts);
  anchor.after(panel);
  (checkbox || confirm).focus();
  return new Promise((resolve) => {
    cancel.addEventListener("click", () => {
      panel.remove();
      resolve(false);
    });
    confirm.addEventListener("click", async () => {
      confirm.disabled = true;
      if (accepted === null) {
        try {
          const body = { accept: true };
          if (notices.length === 1 && /^[0-9a-f]{64}$/.test(notices[0].sha256 || "")) body.notice_sha256 = notices[0].sha256;
          await api(`/api/lots/${encodeURIComponent(what.lot)}/notice`, { method: "POST", body });
        } catch (error) {
          result.textContent = `Your acceptance could not be recorded: ${errorWords(error)}`;
          result.dataset.kind = "error";
          confirm.disabled = false;
          return;
        }
      }
      panel.remove();
      resolve(true);
    });
  });
}
