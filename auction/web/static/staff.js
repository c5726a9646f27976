// Staff sessions for the admin role: make one (the token is shown once), list, revoke.
import { api, setBearer, errorWords } from "./api.js";
import { el, byId, say, formatTime } from "./util.js";

const TOKEN_KEY = "gavel-console-token";
const token = new URLSearchParams(location.hash.slice(1)).get("token") || sessionStorage.getItem(TOKEN_KEY);
const ROLE_WORDS = { auctioneer: "Auctioneer", compliance: "Compliance", auditor: "Auditor", court: "Court" };
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
const fail = (error) => say(byId("status"), errorWords(error), "error");

async function refresh() {
  const body = await api("/api/staff/sessions");
  byId("sessions").replaceChildren(...body.sessions.map((session) => {
    const revoke = el("button", { type: "button", className: "secondary" }, "Revoke");
    revoke.addEventListener("click", async () => {
      if (!confirm(`Revoke session ${session.session} (${session.label})? Its token stops working at once.`)) return;
      try {
        await api(`/api/staff/sessions/${encodeURIComponent(session.session)}`, { method: "DELETE" });
        say(byId("status"), `Session ${session.session} is revoked.`);
        await refresh();
      } catch (error) {
        fail(error);
      }
    });
    return el("tr", { dataset: { session: session.session } },
      el("td", { className: "mono", text: session.session }),
      el("td", { text: ROLE_WORDS[session.role] || session.role }),
      el("td", { text: session.label }),
      el("td", { text: formatTime(session.created_us, zone) }),
      el("td", { text: formatTime(session.expires_us, zone) }),
      el("td", {}, revoke));
  }));
}

async function create(event) {
  event.preventDefault();
  const role = byId("new-role").value;
  const label = byId("new-label").value.trim();
  try {
    const made = await api("/api/staff/sessions", { method: "POST", body: { role, label } });
    byId("new-token-text").textContent = made.token;
    byId("new-token").hidden = false;
    say(byId("status"), `Made a ${ROLE_WORDS[role]} session ${made.session}, valid until ${formatTime(made.expires_us, zone)}.`);
    await refresh();
  } catch (error) {
    fail(error);
  }
}

function start() {
  if (!token) {
    say(byId("status"), "This page needs an admin link (gavel staff --role admin prints it; it ends in #token=…).", "error");
    return;
  }
  setBearer(token);
  sessionStorage.setItem(TOKEN_KEY, token);
  history.replaceState(null, "", location.pathname);
  byId("new-form").addEventListener("submit", create);
  refresh().catch(fail);
}

start();
