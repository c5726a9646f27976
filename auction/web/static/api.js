// REST client (docs/protocol.md §1): JSON in and out, errors as ApiError with words a person
// can read. Every error body has the shape {"error": {"code", "message"}}.

const CODE_WORDS = {
  MALFORMED: "The document number is not in the expected format.",
  BAD_CHECK_DIGIT: "The check character of the document number is wrong.",
  INVALID_DATE: "A date in the document is not a valid date.",
  MINOR: "Bidders must be adults.",
  DOCUMENT_EXPIRED: "The document has expired.",
  NAME_MISMATCH: "The name does not match the document.",
  NON_ASCII_DIGIT: "The document number may only use the digits 0 to 9.",
  DOCUMENT_IN_USE: "This identity document is already verified on another account. One person may hold one account.",
  IDENTITY_BOUND: "The identity on this account is already verified and cannot be changed here.",
  REGISTERED_ON_OPEN_LOT: "The identity on this account cannot change while you are registered for a lot that has not closed.",
  NOT_ELIGIBLE: "You are not eligible to bid on this lot.",
  BARRED: "You are barred from bidding on this lot.",
  DUPLICATE: "You are already registered for this lot.",
  INSUFFICIENT_FUNDS: "The payment provider refused the deposit: insufficient funds.",
  IDEMPOTENCY_CONFLICT: "This request was already used for different terms.",
  UNKNOWN_LOT: "There is no such lot.",
  UNAUTHORIZED: "You are not signed in, or your session has expired.",
  FORBIDDEN: "You are not allowed to do that.",
  NOT_VERIFIED: "Verify your identity first.",
  LATE: "The bid arrived after the lot closed.",
  BELOW_MIN: "The bid is below the minimum next bid.",
  OFF_GRID: "The amount is not a valid bid step.",
  NO_DEPOSIT: "Your deposit is not frozen yet.",
  NOT_REGISTERED: "You are not registered for this lot.",
  SELF_OUTBID: "You are already the leading bidder.",
  SUSPENDED: "The lot is suspended.",
  PROXY_DISABLED: "This lot does not take proxy maximums.",
  JUMP_NEEDS_CONFIRMATION: "That is a large jump over the current price; confirm it again.",
  BAD_SIGNATURE: "The bid signature did not verify.",
  RATE_LIMITED: "Too many bids in a short time; wait a moment.",
};

const STATUS_WORDS = {
  400: "The request was not valid.",
  401: "You are not signed in, or your session has expired.",
  402: "The payment was refused.",
  403: "You are not allowed to do that.",
  404: "Not found.",
  409: "That conflicts with an earlier request.",
  422: "The request was refused.",
  429: "Too many requests; wait a moment.",
  500: "The server had an internal error.",
  503: "The service is not available right now; try again shortly.",
};

/** Words for a rejection or error code (never the bare code alone). */
export function wordsFor(code, message) {
  if (message && typeof message === "string") {
    const sentence = message.charAt(0).toUpperCase() + message.slice(1);
    return /[.!?]$/.test(sentence) ? sentence : `${sentence}.`;
  }
  return CODE_WORDS[code] || "The request was refused.";
}

export class ApiError extends Error {
  constructor(status, code, words) {
    super(words);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.words = words;
  }
}

/** The session token used for Authorization, set once by the page. */
let bearer = null;
export function setBearer(token) {
  bearer = token || null;
}

/** fetch JSON; throws ApiError (with `.words`) on any failure. `options.text` returns text. */
export async function api(path, options = {}) {
  const headers = { Accept: options.text ? "text/plain" : "application/json" };
  const token = options.token === undefined ? bearer : options.token;
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method: options.method || "GET", headers, cache: "no-store" };
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  } else if (options.raw !== undefined) {
    headers["Content-Type"] = "application/octet-stream"; // a file, sent as it is
    init.body = options.raw;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, "NETWORK", "The server could not be reached. Check your connection.");
  }
  const raw = await response.text();
  if (!response.ok) {
    let code = `HTTP_${response.status}`;
    let message = null;
    try {
      const body = JSON.parse(raw);
      const error = body && body.error;
      if (error && typeof error === "object") {
        code = error.code || code;
        message = error.message || null;
      } else if (typeof error === "string") {
        code = error;
      }
    } catch {
      // A plain-text answer (the /log/ routes) is a sentence; a bare "404: Not Found" is not.
      const text = raw.trim();
      if (text && text.length < 300 && !/</.test(text) && !/^[0-9]{3}\b/.test(text)) message = text;
    }
    const words = message ? wordsFor(code, message)
      : CODE_WORDS[code] || STATUS_WORDS[response.status] || `The server answered with an error (${response.status}).`;
    throw new ApiError(response.status, code, words);
  }
  if (options.text) return raw;
  if (!raw) return null;
  try {
    return JSON.parse(raw);
  } catch {
    throw new ApiError(response.status, "BAD_RESPONSE", "The server sent an answer that is not JSON.");
  }
}

/** Human words for any thrown error. */
export function errorWords(error) {
  if (error instanceof ApiError) return error.words;
  if (error && error.words) return error.words;
  if (error instanceof RangeError || error instanceof TypeError) return wordsFor(null, error.message);
  return wordsFor(null, (error && error.message) || "Something went wrong.");
}
