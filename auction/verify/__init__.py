"""Entry verification shared by the auditor (:mod:`auction.audit`) and the notaries
(:mod:`notary`): pure (STYLE rule 1), it imports only ``chain`` and ``auction.rules``.

The steps are numbered once (:class:`Step`); each check raises :class:`EntryRejected`
naming its step and entry, and the lot replay (:class:`LedgerReplay`) re-runs every lot
through the rules engine.
"""

from __future__ import annotations

from .attestation import (
    ATTESTATION_PREFIX,
    Attestation,
    IdentityError,
    IdentityReason,
    verify_attestation,
)
from .bodies import (
    BODY_VERSION,
    command_body,
    confirmation_document,
    entry_type_for,
    house_body,
    idv_body,
    lot_body,
    sale_body,
    thaw,
)
from .court_orders import COURT_ORDERS, ORDER_VERSION, OrderError, check_order
from .entries import signature_verifies, signed_message
from .errors import EntryRejected, ReplayError, SignedBidError
from .identities import IDV_ROLE, IdentityBook
from .keys import ActorKeys, ed25519_vkey, kid_names_key
from .pipeline import COMMAND_TYPES, check_actor, check_house, check_link, check_time, replay_entry
from .replay import LedgerReplay
from .sealed import (
    ALIAS_MARK,
    BIDDER_FIELDS,
    COMMIT_PREFIX,
    LINK,
    NONCE_BYTES,
    LinkBook,
    SealError,
    bidders_of,
    check_opening,
    commitment,
    open_body,
    rename_bidders,
)
from .signed_bid import (
    BID_REQUEST_PREFIX,
    REQUEST_FIELDS,
    BidMalformed,
    BidRequest,
    SignedBid,
    signed_bytes,
    verify_bid_signature,
)
from .steps import Step

__all__ = [
    "ALIAS_MARK",
    "COMMAND_TYPES",
    "ActorKeys",
    "EntryRejected",
    "check_actor",
    "check_house",
    "check_link",
    "check_time",
    "replay_entry",
    "ATTESTATION_PREFIX",
    "Attestation",
    "BIDDER_FIELDS",
    "BID_REQUEST_PREFIX",
    "BODY_VERSION",
    "BidMalformed",
    "BidRequest",
    "COMMIT_PREFIX",
    "COURT_ORDERS",
    "IDV_ROLE",
    "IdentityBook",
    "IdentityError",
    "IdentityReason",
    "LINK",
    "LedgerReplay",
    "LinkBook",
    "NONCE_BYTES",
    "ORDER_VERSION",
    "OrderError",
    "REQUEST_FIELDS",
    "ReplayError",
    "SealError",
    "SignedBid",
    "SignedBidError",
    "Step",
    "bidders_of",
    "check_opening",
    "check_order",
    "command_body",
    "commitment",
    "confirmation_document",
    "ed25519_vkey",
    "entry_type_for",
    "house_body",
    "idv_body",
    "kid_names_key",
    "lot_body",
    "open_body",
    "rename_bidders",
    "sale_body",
    "signature_verifies",
    "signed_bytes",
    "signed_message",
    "thaw",
    "verify_attestation",
    "verify_bid_signature",
]
