"""Re-exports of `auction.bidding.gateway` and its siblings (the old module)."""

from .bidding.gateway import (
    BIDS_PER_SECOND,
    CALLBACK_DELAY,
    IDEMPOTENCY_GRACE_S,
    SIMULATED_BALANCE,
    BidderKey,
    Gateway,
)
from .bidding.identity_keys import (
    ATTESTATION_VALIDITY_US,
    IDP_KEY_FILE,
    IDP_NAME,
    IdentityKeys,
    identity_seed,
    load_identity_keys,
)
from .bidding.registration import Registration, bidder_code
from .throttle import Throttled

__all__ = [
    "ATTESTATION_VALIDITY_US",
    "BIDS_PER_SECOND",
    "BidderKey",
    "CALLBACK_DELAY",
    "Gateway",
    "IDEMPOTENCY_GRACE_S",
    "IDP_KEY_FILE",
    "IDP_NAME",
    "IdentityKeys",
    "Registration",
    "SIMULATED_BALANCE",
    "Throttled",
    "bidder_code",
    "identity_seed",
    "load_identity_keys",
]
