"""One person, one account — the pure parts: document normalisation (width, case, foreign
digits), keyed fingerprints and the re-verification rule."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auction.identity.binding import (
    Current,
    Permit,
    Refusal,
    document_fingerprint,
    fingerprint,
    reverification,
    stored_fingerprint,
)
from auction.identity.provider import (
    DocumentType,
    check_passport_mrz,
    check_prc_id,
    normalise_document,
    prc_check_character,
)
from auction.verify import IdentityError, IdentityReason

TODAY = dt.date(2026, 11, 25)
KEY = bytes(range(32))
#: GB 11643-1999's own example: its check character is X.
WITH_X = "11010519491231002X"
FULL_WIDTH = str.maketrans("0123456789Xx", "０１２３４５６７８９Ｘｘ")


def full_width(text: str) -> str:
    return text.translate(FULL_WIDTH)


def test_full_width_and_case_normalise_to_one_ascii_number() -> None:
    mixed = full_width(WITH_X[:9]) + WITH_X[9:17] + "ｘ"
    for typed in (WITH_X, WITH_X.lower(), full_width(WITH_X), full_width(WITH_X.lower()), mixed):
        assert normalise_document(f" {typed}\u3000") == WITH_X
        assert check_prc_id(typed, "张三", TODAY).number == WITH_X


@pytest.mark.parametrize(
    "digit",
    [
        "\u00b2",  # superscript two
        "\u2082",  # subscript two
        "\u2461",  # circled two
        "\u0662",  # Arabic-Indic two
        "\u0968",  # Devanagari two
        "\u4e8c",  # CJK numeral two
        "\u00bd",  # one half
    ],
)
def test_any_other_digit_is_refused_with_a_typed_reason(digit: str) -> None:
    number = WITH_X[:5] + digit + WITH_X[6:]
    with pytest.raises(IdentityError) as info:
        check_prc_id(number, "张三", TODAY)
    assert info.value.reason is IdentityReason.NON_ASCII_DIGIT
    assert f"U+{ord(digit):04X}" in info.value.detail


def test_a_superscript_in_a_passport_zone_is_refused_not_a_crash() -> None:
    first = "P<UTOERIKSSON<<ANNA<MARIA".ljust(44, "<")
    second = "L898902C3" + "\u00b3" + "UTO7408122F3204159ZE184226B<<<<<10"
    with pytest.raises(IdentityError) as info:
        check_passport_mrz(first + "\n" + second, "Anna Maria Eriksson", TODAY)
    assert info.value.reason is IdentityReason.NON_ASCII_DIGIT


def test_fingerprints_are_keyed_and_normalised() -> None:
    base = fingerprint(KEY, DocumentType.PRC_RESIDENT_ID, WITH_X, "CHN")
    assert len(base) == 64 and WITH_X not in base
    for variant in (WITH_X.lower(), full_width(WITH_X), full_width(WITH_X.lower())):
        assert fingerprint(KEY, DocumentType.PRC_RESIDENT_ID, variant, "CHN") == base
    assert fingerprint(bytes(32), DocumentType.PRC_RESIDENT_ID, WITH_X, "CHN") != base
    other = WITH_X[:14] + "003"
    other += prc_check_character(other)
    assert fingerprint(KEY, DocumentType.PRC_RESIDENT_ID, other, "CHN") != base
    # A resident card's fingerprint ignores the issuer; a passport's includes it.
    assert fingerprint(KEY, DocumentType.PRC_RESIDENT_ID, WITH_X, "XXX") == base
    passport_a = fingerprint(KEY, DocumentType.PASSPORT_TD3, "L898902C3", "UTO")
    assert fingerprint(KEY, DocumentType.PASSPORT_TD3, "l898902c3", "uto") == passport_a
    assert fingerprint(KEY, DocumentType.PASSPORT_TD3, "L898902C3", "D") != passport_a
    with pytest.raises(IdentityError):
        fingerprint(KEY, DocumentType.PRC_RESIDENT_ID, "1\u00b2", "CHN")


def test_a_checked_document_and_its_stored_personal_data_give_one_fingerprint() -> None:
    document = check_prc_id(full_width(WITH_X.lower()), "张三", TODAY)
    assert document_fingerprint(KEY, document) == fingerprint(
        KEY, DocumentType.PRC_RESIDENT_ID, WITH_X, "CHN"
    )
    assert stored_fingerprint(KEY, document.personal_data()) == document_fingerprint(KEY, document)
    # personal data kept before fingerprints existed: full-width digits, no issuing state
    older = {"document_type": "PRC_RESIDENT_ID", "number": full_width(WITH_X), "name": "张三"}
    assert stored_fingerprint(KEY, older) == document_fingerprint(KEY, document)
    assert stored_fingerprint(KEY, {"document_type": "DRIVING_LICENCE", "number": "1"}) is None
    assert stored_fingerprint(KEY, {"document_type": "PRC_RESIDENT_ID"}) is None


NOW = 1_000_000
PERMIT = Permit(7, "acct-compliance", "the card was replaced")


@pytest.mark.parametrize(
    ("current", "new", "open_lots", "permit", "refusal"),
    [
        (None, "a", (), None, None),  # a first check
        (Current("a", NOW + 1), "a", (), None, Refusal.IDENTITY_BOUND),  # still valid
        (Current("a", NOW + 1), "b", (), None, Refusal.IDENTITY_BOUND),  # another person
        (Current("a", NOW), "a", (), None, None),  # expired: renewal, same document
        (Current("a", NOW), "b", (), None, Refusal.IDENTITY_BOUND),  # expired, another one
        (Current("a", NOW + 1), "b", (), PERMIT, None),  # compliance allowed it
        (Current("a", NOW + 1), "b", ("flat",), PERMIT, Refusal.REGISTERED_ON_OPEN_LOT),
        (Current("a", NOW), "a", ("flat",), None, Refusal.REGISTERED_ON_OPEN_LOT),
        (None, "a", ("flat",), None, None),  # never verified: nothing bound yet
    ],
)
def test_the_reverification_rule(
    current: Current | None,
    new: str,
    open_lots: tuple[str, ...],
    permit: Permit | None,
    refusal: Refusal | None,
) -> None:
    decision = reverification(current, new, open_lots, permit, NOW)
    assert decision.refusal is refusal
    if refusal is None and permit is not None:
        assert decision.permit == permit
    if refusal is Refusal.REGISTERED_ON_OPEN_LOT:
        assert "flat" in decision.detail


DOCUMENT_ALPHABET = st.characters(codec="utf-8", exclude_categories=("Cs",))
PRC_LIKE = st.lists(
    st.sampled_from(list("0123456789Xx０１２３４５６７８９Ｘｘ²³¹₂①٣०一 \u3000")),
    min_size=16,
    max_size=20,
).map("".join)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(DOCUMENT_ALPHABET, max_size=100), PRC_LIKE))
def test_any_text_is_a_document_or_a_typed_refusal(typed: str) -> None:
    """Document checks only ever raise `IdentityError` (the API's typed 422), whatever the
    text; what passes is plain ASCII and fingerprints like its ASCII spelling."""
    for check in (check_prc_id, check_passport_mrz):
        try:
            document = check(typed, "Anna Maria Eriksson", TODAY)
        except IdentityError:
            continue
        assert document.number.isascii() and document.number == document.number.upper()
        assert document_fingerprint(KEY, document) == fingerprint(
            KEY, document.document_type, document.number, document.issuing_state
        )
