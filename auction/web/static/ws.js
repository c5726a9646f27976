// The websocket client of docs/protocol.md §2: hello/welcome, clock sync (keeping the
// lowest-round-trip sample, rules C15), subscriptions replayed from the last applied seq after
// a reconnect (with backoff), and bids kept until their ack so they are resent with their
// original idempotency keys.

const TIME_SYNC_MS = 30_000;
const MIN_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 15_000;
const FINAL_CLOSES = {
  4001: "This page speaks a protocol version the server does not support. Reload the page.",
  4003: "Your session is not valid any more. Register again to bid.",
  4009: "This session was opened in another tab or window; bidding continues there.",
};

/** Clock offset estimator: offset = server − (t0 + t1) / 2, from the lowest-RTT sample. */
export class ServerClock {
  constructor() {
    this.offsetMs = 0;
    this.rttMs = Infinity;
    this.samples = 0;
  }

  /** Record one exchange (all in ms; serverMs from server_time_us / 1000). */
  observe(t0, t1, serverMs) {
    const rtt = t1 - t0;
    this.samples += 1;
    if (rtt >= 0 && rtt <= this.rttMs) {
      this.rttMs = rtt;
      this.offsetMs = serverMs - (t0 + t1) / 2;
    }
  }

  /** The server's current time in µs. */
  nowUs() {
    return Math.round((Date.now() + this.offsetMs) * 1000);
  }
}

export class GavelSocket {
  /**
   * options: {url, session, clock, onMessage(message), onStatus(state, words)}.
   * state is "connecting", "open", "reconnecting" or "closed".
   */
  constructor(options = {}) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.url = options.url || `${scheme}//${location.host}/ws`;
    this.session = options.session || null;
    this.clock = options.clock || new ServerClock();
    this.onMessage = options.onMessage || (() => {});
    this.onStatus = options.onStatus || (() => {});
    this.subscriptions = new Map(); // lot → last applied seq
    this.pending = new Map(); // idempotency_key → bid message awaiting its ack
    this.account = null;
    this.socket = null;
    this.welcomed = false;
    this.attempt = 0;
    this.stopped = false;
    this.timers = new Set();
  }

  connect() {
    this.stopped = false;
    this.#open();
    return this;
  }

  close() {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    if (this.socket) this.socket.close(1000);
    this.onStatus("closed", "Disconnected.");
  }

  subscribe(lot) {
    if (!this.subscriptions.has(lot)) this.subscriptions.set(lot, 0);
    if (this.welcomed) this.#send({ type: "subscribe", lot, since_seq: this.subscriptions.get(lot) });
  }

  /** The page calls this with the seq of every snapshot/update it applied. */
  applied(lot, seq) {
    if (Number.isSafeInteger(seq) && seq > (this.subscriptions.get(lot) || 0)) this.subscriptions.set(lot, seq);
  }

  /** Send a signed bid message; it stays pending (and is resent on reconnect) until acked. */
  bid(message) {
    this.pending.set(message.idempotency_key, message);
    if (this.welcomed) this.#send(message);
  }

  #timer(callback, ms) {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      callback();
    }, ms);
    this.timers.add(timer);
  }

  #send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  #syncClock() {
    this.#send({ type: "time", t0: Date.now() });
  }

  #open() {
    this.welcomed = false;
    this.onStatus(this.attempt ? "reconnecting" : "connecting", "Connecting to the auction…");
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch {
      this.#retry();
      return;
    }
    this.socket = socket;
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ type: "hello", v: 1, session: this.session }));
    });
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      this.#handle(message);
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.welcomed = false;
      if (this.stopped) return;
      const final = FINAL_CLOSES[event.code];
      if (final) {
        this.stopped = true;
        this.onStatus("closed", final);
        return;
      }
      this.#retry();
    });
  }

  #retry() {
    this.attempt += 1;
    const base = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** Math.min(this.attempt - 1, 10));
    const delay = base / 2 + Math.random() * base / 2;
    this.onStatus("reconnecting", `Connection lost; reconnecting in ${Math.ceil(delay / 1000)} s…`);
    this.#timer(() => this.#open(), delay);
  }

  #handle(message) {
    if (message.type === "welcome") {
      this.welcomed = true;
      this.attempt = 0;
      this.account = message.account || null;
      if (Number.isFinite(message.server_time_us)) {
        // A first rough sample until the time exchange answers.
        if (this.clock.samples === 0) this.clock.offsetMs = message.server_time_us / 1000 - Date.now();
      }
      this.onStatus("open", "Connected.");
      this.#syncClock();
      this.#timer(() => this.#syncClock(), 250);
      this.#timer(() => this.#syncClock(), 600);
      this.#schedulePeriodicSync();
      for (const [lot, since] of this.subscriptions) this.#send({ type: "subscribe", lot, since_seq: since });
      for (const bid of this.pending.values()) this.#send(bid); // same keys: the server dedupes
    } else if (message.type === "time") {
      if (Number.isFinite(message.t0) && Number.isFinite(message.server_time_us)) {
        this.clock.observe(message.t0, Date.now(), message.server_time_us / 1000);
      }
      return;
    } else if (message.type === "ack") {
      this.pending.delete(message.idempotency_key);
    }
    this.onMessage(message);
  }

  #schedulePeriodicSync() {
    const socket = this.socket;
    this.#timer(() => {
      if (this.socket !== socket || !this.welcomed) return;
      this.#syncClock();
      this.#schedulePeriodicSync();
    }, TIME_SYNC_MS);
  }
}
