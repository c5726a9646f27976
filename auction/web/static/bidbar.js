// The phone's bid bar: the price, the countdown and a bid button pinned to the bottom of the
// screen (hidden on wide screens, where the price panel is in view). It mirrors the lot
// room's own elements, so the room's code needs no change to keep it current. Once the lot
// is closed those elements hold its result and the time it ended, and the room hides the
// button (lot.js renderEnded): the bar then shows the result alone.

import { byId } from "./util.js";

function mirror(sourceId, targetId) {
  const source = byId(sourceId);
  const target = byId(targetId);
  const copy = () => {
    target.textContent = source.textContent;
  };
  new MutationObserver(copy).observe(source, { childList: true, characterData: true, subtree: true });
  copy();
}

export function startBidBar() {
  mirror("price", "bar-price");
  mirror("countdown", "bar-countdown");
  const button = byId("bar-bid");
  const formButton = byId("bid-button");
  const follow = () => {
    // Never disabled: a watcher who cannot bid yet is taken to the words that say why.
    const buy = /^Buy at /.test(formButton.textContent); // a fixed-price sale
    const how = buy ? "How to buy" : "How to bid";
    button.textContent = formButton.disabled ? how : formButton.textContent;
    // Its own name: the form's button keeps "Bid …" for assistive technology and tests.
    const note = /^Bid \((.*)\)$/.exec(formButton.textContent);
    const name = note ? `Place a bid: ${note[1]}`
      : buy ? formButton.textContent : `Place a bid of ${formButton.textContent.replace(/^Bid\s*/, "")}`;
    button.setAttribute("aria-label", formButton.disabled ? how : name);
  };
  new MutationObserver(follow).observe(formButton, { childList: true, characterData: true, subtree: true, attributes: true });
  follow();
  button.addEventListener("click", () => {
    if (formButton.disabled) {
      byId("bid-section").scrollIntoView({ block: "start" });
      return;
    }
    byId("bid-form").requestSubmit();
    const confirm = byId("confirm");
    (confirm.hidden ? byId("bid-message") : confirm).scrollIntoView({ block: "center" });
  });
}
