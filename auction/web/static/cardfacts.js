// The catalogue card's facts (GET /api/facts): a cover picture, the address and area, the
// appraisal, deposit and step, the extension rule, registered bidders and views.

import { api } from "./api.js";
import { el } from "./util.js";

let summaries = {};

/** Fetch every lot's facts summary; resolves to the map (kept for `cardFacts`). */
export async function loadFactsSummary() {
  try {
    const body = await api("/api/facts");
    summaries = (body && body.lots) || {};
  } catch {
    // The cards show without facts.
  }
  return summaries;
}

function count(value, one, many) {
  return `${value.toLocaleString("en-US")} ${value === 1 ? one : many}`;
}

/** The nodes to put in a lot's card: [cover or null, facts list or null]. */
export function cardFacts(lot) {
  const summary = summaries[lot.lot_id];
  if (!summary) return [null, null];
  const facts = summary.facts || {};
  const terms = summary.terms || {};
  const cover = summary.cover
    ? el("img", { className: "card-cover", src: summary.cover.url, alt: `${facts.property_kind || "Lot"}: ${summary.cover.name}`, loading: "lazy" })
    : null;
  const list = el("dl", { className: "facts card-facts" });
  const fact = (label, value) => {
    if (value) list.append(el("dt", { text: label }), el("dd", { text: value }));
  };
  fact("Address", facts.address);
  fact("Area", facts.area);
  fact("Appraised at", terms.appraisal_text);
  fact("Fixed price", terms.fixed_price_text); // a fixed-price sale: no step, no extension
  fact("Deposit", terms.deposit_text);
  fact("Step", terms.step ? terms.step_text : null);
  fact("Extension", terms.extension_rule);
  fact("Bidders", `${count(summary.registered ?? 0, "registered", "registered")} · ${(summary.watching ?? 0).toLocaleString("en-US")} watching · ${count(summary.views ?? 0, "view", "views")}`);
  return [cover, list];
}
