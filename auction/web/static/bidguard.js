// What the bid form stops before anything is signed: amounts that are not money ("1,0,0"),
// and bids that can only be refused (not registered, no deposit, already leading, below the
// next bid, off the step). A jump of more than JUMP_STEPS steps over the next bid is asked
// again. Pure: no DOM, no network; the words name the numbers, as the server's do.

import { formatMoney, parseAmount } from "./money.js";

export const JUMP_STEPS = 10;

/** "CN¥2,140,000" (cents only when there are any), as the server writes amounts. */
export function shortMoney(minor, currency) {
  return formatMoney(minor, currency, "en-US").replace(/\.0+$/, "");
}

const GROUPED = /^[0-9]{1,3}(,[0-9]{3})+(\.[0-9]*)?$/;
const PLAIN = /^[0-9]+(\.[0-9]*)?$/;

/** Minor units from what a person typed: digits, commas only between groups of three, and
 * the currency's decimals. Throws RangeError with words. */
export function parseBidText(text, currency) {
  const cleaned = String(text ?? "").trim().replace(/^(CN¥|¥|\$|£|€|US\$)\s*/, "");
  if (!GROUPED.test(cleaned) && !PLAIN.test(cleaned)) {
    throw new RangeError("Enter the amount in digits, with commas only between groups of three digits, for example 2,140,000.");
  }
  return parseAmount(cleaned.replace(/,/g, ""), currency);
}

function depositReady(registration) {
  const deposit = registration && registration.deposit;
  if (!deposit || !deposit.amount) return true;
  return ["FROZEN", "EXEMPT", "APPLIED_TO_PRICE"].includes(deposit.state);
}

/**
 * Check a bid before it is signed.
 * `kind` "bid" or "max"; `view` the lot's public view; `registration` from /api/me (or null);
 * `terms` the lot's terms from /api/lots/{lot}/facts (step, deposit, start price; or null).
 * Returns {block: words} | {jump: words, amount} | {amount}.
 */
export function checkBid({ kind = "bid", text, view, registration, terms, currency }) {
  let amount;
  try {
    amount = parseBidText(text, currency);
  } catch (error) {
    const words = String(error.message || "Enter an amount in digits.");
    return { block: /[.!?]$/.test(words) ? words : `${words.charAt(0).toUpperCase()}${words.slice(1)}.` };
  }
  const money = (minor) => shortMoney(minor, currency);
  const deposit = (registration && registration.deposit && registration.deposit.amount) || (terms && terms.deposit) || 0;
  if (!registration) {
    return { block: deposit ? `Register for this lot and pay the deposit of ${money(deposit)} to bid.` : "Register for this lot to bid." };
  }
  if (!depositReady(registration)) return { block: `Pay the deposit of ${money(deposit)} to bid.` };
  if (!view || kind !== "bid") return { amount };
  const step = terms && Number.isSafeInteger(terms.step) ? terms.step : null;
  const stepWords = step ? ` (step ${money(step)})` : "";
  if (view.leader_code && view.leader_code === registration.code && view.format !== "LIVE_AUCTIONEER") {
    return { block: `You are already the highest bidder at ${money(view.price)}: no need to bid against yourself.` };
  }
  if (Number.isSafeInteger(view.min_next) && amount < view.min_next) {
    return { block: `The next bid is at least ${money(view.min_next)}${stepWords}.` };
  }
  if (step && Number.isSafeInteger(view.start_price) && (amount - view.start_price) % step !== 0) {
    const below = amount - ((amount - view.start_price) % step);
    return {
      block: `Bids go up in steps of ${money(step)} from ${money(view.start_price)}: bid ${money(Math.max(below, view.min_next))} or ${money(Math.max(below, view.min_next) + step)}.`,
    };
  }
  // A table of steps: the step at the current price is the next bid's distance from it.
  const jumpStep = step || (Number.isSafeInteger(view.price) && view.min_next > view.price ? view.min_next - view.price : null);
  if (jumpStep && Number.isSafeInteger(view.min_next) && amount > view.min_next + JUMP_STEPS * jumpStep) {
    const steps = Math.round((amount - view.min_next) / jumpStep);
    return {
      amount,
      jump: `${money(amount)} is ${step ? "" : "about "}${steps} steps above the next bid of ${money(view.min_next)}. ${terms && terms.bids_irrevocable ? "Bids cannot be withdrawn: press" : "Press"} Bid again if you mean ${money(amount)}.`,
    };
  }
  return { amount };
}
