"""Identity verification (rules C2.1): document checks, attestations, no personal data out."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auction.identity.provider import (
    DocumentType,
    IdentityProvider,
    check_passport_mrz,
    check_prc_id,
    commitment,
    mrz_check_digit,
    prc_check_character,
)
from auction.verify import IdentityError, IdentityReason, verify_attestation

TODAY = dt.date(2026, 11, 25)
ICAO_SPECIMEN = (
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10"
)


def prc(first17: str) -> str:
    return first17 + prc_check_character(first17)


def td3(
    number: str, birth: str, expiry: str, surname: str = "ERIKSSON", given: str = "ANNA<MARIA"
) -> str:
    """A TD3 zone with correct check digits for the given fields."""
    first = f"P<UTO{surname}<<{given}".ljust(44, "<")
    number = number.ljust(9, "<")
    personal = "ZE184226B".ljust(14, "<")
    body = (
        number
        + mrz_check_digit(number)
        + "UTO"
        + birth
        + mrz_check_digit(birth)
        + "F"
        + expiry
        + mrz_check_digit(expiry)
        + personal
        + mrz_check_digit(personal)
    )
    composite = body[0:10] + body[13:20] + body[21:43]
    return first + "\n" + body + mrz_check_digit(composite)


def test_prc_standard_example_check_character() -> None:
    assert prc_check_character("11010519491231002") == "X"  # GB 11643-1999 example
    document = check_prc_id("11010519491231002x", " 张三 ", TODAY)
    assert document.birth_date == dt.date(1949, 12, 31) and document.name == "张三"


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("110105194912310021", IdentityReason.BAD_CHECK_DIGIT),
        (prc("11010519491331002"), IdentityReason.INVALID_DATE),  # month 13
        (prc("11010520300101002"), IdentityReason.INVALID_DATE),  # born in the future
        (prc("11010520100101002"), IdentityReason.MINOR),  # 16 years old
        (prc("91010519491231002"), IdentityReason.MALFORMED),  # no such region
        ("1101051949123100", IdentityReason.MALFORMED),
        ("11010519491231002Y", IdentityReason.MALFORMED),
    ],
)
def test_prc_invalid_numbers(number: str, reason: IdentityReason) -> None:
    with pytest.raises(IdentityError) as info:
        check_prc_id(number, "张三", TODAY)
    assert info.value.reason is reason


def test_prc_adult_on_18th_birthday_and_not_the_day_before() -> None:
    number = prc("11010520081125002")
    assert check_prc_id(number, "李四", TODAY).birth_date == dt.date(2008, 11, 25)
    with pytest.raises(IdentityError) as info:
        check_prc_id(number, "李四", TODAY - dt.timedelta(days=1))
    assert info.value.reason is IdentityReason.MINOR


def test_icao_specimen_check_digits_pass_but_it_expired() -> None:
    assert mrz_check_digit("L898902C3") == "6" and mrz_check_digit("740812") == "2"
    with pytest.raises(IdentityError) as info:
        check_passport_mrz(ICAO_SPECIMEN, "Anna Maria Eriksson", TODAY)
    assert info.value.reason is IdentityReason.DOCUMENT_EXPIRED


def test_valid_passport_and_name_matching() -> None:
    zone = td3("L898902C3", "740812", "320415")
    document = check_passport_mrz(zone, "Anna María Eriksson", TODAY)
    assert document.expiry == dt.date(2032, 4, 15) and document.number == "L898902C3"
    with pytest.raises(IdentityError) as info:
        check_passport_mrz(zone, "Anna Svensson", TODAY)
    assert info.value.reason is IdentityReason.NAME_MISMATCH


@pytest.mark.parametrize("position", [9, 19, 27, 43])
def test_passport_each_check_digit_is_checked(position: int) -> None:
    zone = td3("L898902C3", "740812", "320415")
    first, second = zone.split("\n")
    wrong = str((int(second[position]) + 1) % 10)
    broken = first + "\n" + second[:position] + wrong + second[position + 1 :]
    with pytest.raises(IdentityError) as info:
        check_passport_mrz(broken, "Anna Maria Eriksson", TODAY)
    assert info.value.reason is IdentityReason.BAD_CHECK_DIGIT


def test_passport_minor_and_malformed() -> None:
    with pytest.raises(IdentityError) as info:
        check_passport_mrz(td3("X12345678", "150101", "300101"), "Anna Maria Eriksson", TODAY)
    assert info.value.reason is IdentityReason.MINOR
    for garbage in ("", "P<UTO\nshort", ICAO_SPECIMEN.replace("<", "#", 1)):
        with pytest.raises(IdentityError):
            check_passport_mrz(garbage, "x", TODAY)


def test_attestation_binds_key_to_a_salted_commitment() -> None:
    provider = IdentityProvider("idp.gavel.local", Ed25519PrivateKey.generate(), 10**12)
    bidder_key = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    document = provider.check(DocumentType.PRC_RESIDENT_ID, "11010519491231002X", "张三", TODAY)
    salt = b"s" * 32
    attestation = provider.attest(document, bidder_key, salt, now_us=1_000)
    verify_attestation(attestation, provider.public_key, now_us=2_000)
    assert attestation.commit == commitment(salt, document.personal_data())
    text = str(attestation.to_json())
    assert "张三" not in text and "11010519491231002X" not in text  # no personal data
    assert commitment(b"t" * 32, document.personal_data()) != attestation.commit
    with pytest.raises(IdentityError) as info:
        verify_attestation(attestation, provider.public_key, now_us=attestation.expires_us)
    assert info.value.reason is IdentityReason.ATTESTATION_EXPIRED
    forged = type(attestation)(**(attestation.to_json() | {"subject_key": "AAAA"}))
    with pytest.raises(IdentityError) as info:
        verify_attestation(forged, provider.public_key, now_us=2_000)
    assert info.value.reason is IdentityReason.ATTESTATION_INVALID
