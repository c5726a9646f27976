// My auctions (docs/protocol.md §1 "My auctions"): every lot of the account, as the server
// keeps it, from any browser logged into the account. The browser that registered holds the
// signing key and can make a sign-in code; another browser signs in with it (also as a link,
// /my#signin=CODE) and can watch and download, not bid.

import { api, errorWords, setBearer } from "./api.js";
import { renderSummary } from "./mystate.js";
import { currentSession, signInWithCode, signOutWatcher, SIGNED_ELSEWHERE } from "./session.js";
import { byId, el, say } from "./util.js";
import { GavelSocket } from "./ws.js";

const REFRESH_DELAY_MS = 200;
let session = null;
let socket = null;
let timer = null;

async function load() {
  timer = null;
  let answer;
  try {
    answer = await api("/api/me/lots");
  } catch (error) {
    say(byId("status"), `Your lots could not be loaded: ${errorWords(error)}`, "error");
    return;
  }
  say(byId("status"), "");
  const lots = answer.lots || [];
  byId("lots").replaceChildren(...lots.map((summary) => el("section", { className: "mine-card" },
    renderSummary(summary, { heading: true, session, canSign: session.canSign }))));
  byId("lots-empty").hidden = lots.length > 0;
  if (!socket) {
    socket = new GavelSocket({ session: null, onMessage });
    socket.connect();
  }
  for (const summary of lots) socket.subscribe(summary.lot);
  if (lots.some((s) => s.standing === "won" && (!s.documents.length || s.documents.some((d) => d.entry === null)))) later(1000);
}

function later(delay = REFRESH_DELAY_MS) {
  if (!timer) timer = setTimeout(load, delay);
}

function onMessage(message) {
  if (message.type === "update" && (message.events || []).length) later();
  if (message.type === "snapshot" || message.type === "update") socket.applied(message.lot, message.seq ?? (message.view && message.view.seq));
}

async function makeCode() {
  const button = byId("code-button");
  button.disabled = true;
  try {
    const answer = await api("/api/me/signin-code", { method: "POST", body: {} });
    const link = `${location.origin}/my#signin=${encodeURIComponent(answer.code)}`;
    byId("code-value").textContent = answer.code;
    byId("code-value").hidden = false;
    byId("code-link").replaceChildren("Or open this link in the other browser: ", el("a", { href: link }, link));
    byId("code-link").hidden = false;
    say(byId("code-result"), "Your sign-in code (shown once; an earlier code no longer works):", "ok");
  } catch (error) {
    say(byId("code-result"), `No code could be made: ${errorWords(error)}`, "error");
  } finally {
    button.disabled = false;
  }
}

async function signIn(code) {
  say(byId("signin-result"), "Signing in…");
  try {
    await signInWithCode(code);
    location.replace("/my");
  } catch (error) {
    say(byId("signin-result"), `Sign-in failed: ${errorWords(error)}`, "error");
  }
}

function showSession() {
  byId("who").textContent = session.canSign
    ? `Signed in as account ${session.account}. This browser holds your signing key: you can bid from it.`
    : `Signed in as account ${session.account} with a sign-in code.`;
  if (!session.canSign) {
    byId("watching").textContent = SIGNED_ELSEWHERE;
    byId("watching").hidden = false;
    byId("signout-row").hidden = false;
  } else {
    byId("code-section").hidden = false;
  }
}

async function start() {
  byId("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const code = byId("signin-code").value.trim();
    if (!code) return say(byId("signin-result"), "Enter the sign-in code.", "error");
    signIn(code);
  });
  byId("code-button").addEventListener("click", makeCode);
  byId("signout-button").addEventListener("click", () => {
    signOutWatcher();
    location.replace("/my");
  });
  const fragment = new URLSearchParams(location.hash.slice(1));
  const code = fragment.get("signin");
  if (code) {
    history.replaceState(null, "", "/my");
    await signIn(code);
    return;
  }
  session = await currentSession();
  if (!session) {
    byId("signin-section").hidden = false;
    return;
  }
  setBearer(session.session);
  showSession();
  await load();
}

start();
