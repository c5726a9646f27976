"""A simulated identity provider: real-name checks and signed attestations (rules C2.1).

Think of the payment app's real-name check: it validates a name plus a document and signs an
attestation that binds the bidder's public key to a salted commitment of the personal data.
The ledger gets only the attestation (`idv` entry: commitment, provider, level, expiry, the
bidder's key, the provider's signature); the personal data and the salt stay in an ordinary
table that can be erased without breaking the ledger.

Documents checked:
* PRC resident identity number (GB 11643-1999): 17 digits + a check character (ISO 7064
  MOD 11-2), a valid birth date, an adult holder;
* passport machine-readable zone, ICAO 9303 TD3 (two lines of 44 characters): every check
  digit (weights 7-3-1), birth and expiry dates, the name matching the zone, an adult holder.

Document numbers are normalised before any check (`normalise_document`): width variants
(full-width digits and letters, as Chinese input methods type them) become ASCII by NFKC; any
other digit (a superscript, a circled digit, another script's digit) is refused with
`NON_ASCII_DIGIT`, never guessed; letters are upper-cased (the check character `X`).

Pure: no clock, no randomness (`now` and `salt` are parameters). `IdentityError` carries a
typed reason.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import hashlib
import unicodedata
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from chain import canonical_json

from ..verify.attestation import ATTESTATION_PREFIX, Attestation, IdentityError, IdentityReason

ADULT_AGE = 18


class DocumentType(enum.StrEnum):
    PRC_RESIDENT_ID = "PRC_RESIDENT_ID"
    PASSPORT_TD3 = "PASSPORT_TD3"


@dataclass(frozen=True, slots=True)
class VerifiedDocument:
    """What a successful check established (personal data: never goes on the ledger)."""

    document_type: DocumentType
    number: str
    name: str
    birth_date: dt.date
    expiry: dt.date | None
    nationality: str | None
    #: The state that issued the document (ICAO 9303 code; "CHN" for a resident identity card).
    issuing_state: str = "CHN"

    def personal_data(self) -> dict[str, Any]:
        return {
            "document_type": self.document_type.value,
            "number": self.number,
            "name": self.name,
            "birth_date": self.birth_date.isoformat(),
            "expiry": self.expiry.isoformat() if self.expiry else None,
            "nationality": self.nationality,
            "issuing_state": self.issuing_state,
        }


# --- document text ----------------------------------------------------------------------------

#: Compatibility decompositions that only change a character's width: NFKC may fold these.
_WIDTH_TAGS = ("<wide>", "<narrow>")


def _is_ascii_digit(char: str) -> bool:
    return "0" <= char <= "9"


def normalise_document(text: str) -> str:
    """A document number or zone as ASCII: NFKC, upper case, surrounding space stripped.

    Full-width digits and letters become ASCII. Any other digit — a superscript (²), a
    subscript, a circled digit, a digit of another script (٣, ०), a CJK numeral — raises
    `IdentityError(NON_ASCII_DIGIT)`: only the digits 0-9 make a document number."""
    kept = []
    for char in text:
        if char.isascii():
            kept.append(char)
        elif unicodedata.decomposition(char).startswith(_WIDTH_TAGS):
            kept.append(unicodedata.normalize("NFKC", char))
        elif unicodedata.numeric(char, None) is not None:
            raise IdentityError(
                IdentityReason.NON_ASCII_DIGIT,
                f"only the digits 0-9 may be used, not {char!r} (U+{ord(char):04X})",
            )
        else:
            kept.append(char)
    folded = unicodedata.normalize("NFKC", "".join(kept))
    for char in folded:
        if not char.isascii() and unicodedata.numeric(char, None) is not None:
            raise IdentityError(
                IdentityReason.NON_ASCII_DIGIT, f"only the digits 0-9 may be used, not {char!r}"
            )
    return folded.strip().upper()


# --- PRC resident identity number (GB 11643-1999) --------------------------------------------

_PRC_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_PRC_CHECK = "10X98765432"


def prc_check_character(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of the first 17 digits."""
    total = sum(int(digit) * weight for digit, weight in zip(first17, _PRC_WEIGHTS, strict=True))
    return _PRC_CHECK[total % 11]


def _age(birth: dt.date, today: dt.date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def check_prc_id(number: str, name: str, today: dt.date) -> VerifiedDocument:
    """Validate an 18-character resident identity number for an adult holder."""
    text = normalise_document(number)
    if (
        len(text) != 18
        or not all(_is_ascii_digit(char) for char in text[:17])
        or not (_is_ascii_digit(text[17]) or text[17] == "X")
    ):
        raise IdentityError(IdentityReason.MALFORMED, "an identity number has 17 digits + 0-9/X")
    if text[0] not in "12345678":
        raise IdentityError(IdentityReason.MALFORMED, "unknown region code")
    if prc_check_character(text[:17]) != text[17]:
        raise IdentityError(IdentityReason.BAD_CHECK_DIGIT, "the check character is wrong")
    try:
        birth = dt.date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError as exc:
        raise IdentityError(IdentityReason.INVALID_DATE, "the birth date does not exist") from exc
    if birth > today or birth.year < 1900:
        raise IdentityError(IdentityReason.INVALID_DATE, "the birth date is impossible")
    if _age(birth, today) < ADULT_AGE:
        raise IdentityError(IdentityReason.MINOR, "bidders must be adults (full civil capacity)")
    clean = _normalise_name(name)
    if not clean:
        raise IdentityError(IdentityReason.NAME_MISMATCH, "a name is required")
    return VerifiedDocument(DocumentType.PRC_RESIDENT_ID, text, clean, birth, None, "CHN")


# --- ICAO 9303 machine-readable zone (TD3 passports) -----------------------------------------


def mrz_check_digit(field: str) -> str:
    """ICAO 9303 part 3 §4.9: weights 7, 3, 1; digits, A=10 … Z=35, filler '<' = 0."""
    total = 0
    for position, char in enumerate(field):
        if _is_ascii_digit(char):
            value = int(char)
        elif "A" <= char <= "Z":
            value = ord(char) - ord("A") + 10
        elif char == "<":
            value = 0
        else:
            raise IdentityError(IdentityReason.MALFORMED, f"invalid MRZ character {char!r}")
        total += value * (7, 3, 1)[position % 3]
    return str(total % 10)


def _mrz_date(text: str, *, future: bool, today: dt.date) -> dt.date:
    """YYMMDD; the century is the one that makes sense (birth in the past, expiry near)."""
    if len(text) != 6 or not all(_is_ascii_digit(char) for char in text):
        raise IdentityError(IdentityReason.INVALID_DATE, "MRZ dates are YYMMDD digits")
    year = int(text[:2])
    century = (today.year // 100) * 100
    full = century + year
    if not future and full > today.year:
        full -= 100
    if future and full < today.year - 50:
        full += 100
    try:
        return dt.date(full, int(text[2:4]), int(text[4:6]))
    except ValueError as exc:
        raise IdentityError(IdentityReason.INVALID_DATE, f"no such date {text}") from exc


def check_passport_mrz(mrz: str, name: str, today: dt.date) -> VerifiedDocument:
    """Validate a TD3 machine-readable zone (two lines of 44) for an adult, unexpired holder
    whose name matches the zone."""
    text = normalise_document(mrz)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) != 2 or any(len(line) != 44 for line in lines):
        raise IdentityError(IdentityReason.MALFORMED, "a passport MRZ is two lines of 44")
    first, second = lines
    if first[0] != "P":
        raise IdentityError(IdentityReason.MALFORMED, "not a passport (TD3) zone")
    for line in lines:
        for char in line:
            if not (_is_ascii_digit(char) or "A" <= char <= "Z" or char == "<"):
                raise IdentityError(IdentityReason.MALFORMED, "invalid MRZ character")
    number, number_check = second[0:9], second[9]
    birth_text, birth_check = second[13:19], second[19]
    expiry_text, expiry_check = second[21:27], second[27]
    personal, personal_check = second[28:42], second[42]
    composite = second[0:10] + second[13:20] + second[21:43]
    for field, check, what in (
        (number, number_check, "document number"),
        (birth_text, birth_check, "birth date"),
        (expiry_text, expiry_check, "expiry date"),
        (composite, second[43], "composite"),
    ):
        if mrz_check_digit(field) != check:
            raise IdentityError(IdentityReason.BAD_CHECK_DIGIT, f"{what} check digit is wrong")
    if personal_check != "<" or personal.strip("<"):
        if mrz_check_digit(personal) != personal_check:
            raise IdentityError(IdentityReason.BAD_CHECK_DIGIT, "personal number check digit")
    birth = _mrz_date(birth_text, future=False, today=today)
    expiry = _mrz_date(expiry_text, future=True, today=today)
    if expiry < today:
        raise IdentityError(IdentityReason.DOCUMENT_EXPIRED, "the passport has expired")
    if _age(birth, today) < ADULT_AGE:
        raise IdentityError(IdentityReason.MINOR, "bidders must be adults (full civil capacity)")
    surname, _, given = first[5:].partition("<<")
    zone_name = _normalise_name(f"{given.replace('<', ' ')} {surname.replace('<', ' ')}")
    if sorted(zone_name.split()) != sorted(_mrz_name(name).split()):
        raise IdentityError(IdentityReason.NAME_MISMATCH, "the name does not match the passport")
    return VerifiedDocument(
        DocumentType.PASSPORT_TD3,
        number.replace("<", ""),
        _normalise_name(name),
        birth,
        expiry,
        second[10:13].replace("<", ""),
        first[2:5].replace("<", ""),
    )


def _normalise_name(name: str) -> str:
    return " ".join(unicodedata.normalize("NFC", name).split())[:200]


def _mrz_name(name: str) -> str:
    """A name as ICAO 9303 transliterates it: accents dropped, upper case, punctuation → space."""
    decomposed = unicodedata.normalize("NFKD", name)
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join("".join(c if c.isalpha() else " " for c in letters.upper()).split())


# --- attestations ------------------------------------------------------------------------------


def commitment(salt: bytes, personal_data: dict[str, Any]) -> str:
    """`SHA-256(salt || JCS(pii))`, hex (ledger spec §1 `idv`)."""
    return hashlib.sha256(salt + canonical_json(personal_data)).hexdigest()


class IdentityProvider:
    """The provider: its own Ed25519 key; checks documents and signs attestations."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey, validity_us: int) -> None:
        self.name = name
        self._key = private_key
        self.validity_us = validity_us

    @property
    def public_key(self) -> bytes:
        return self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def check(
        self, document_type: DocumentType, document: str, name: str, today: dt.date
    ) -> VerifiedDocument:
        if document_type is DocumentType.PRC_RESIDENT_ID:
            return check_prc_id(document, name, today)
        return check_passport_mrz(document, name, today)

    def attest(
        self, verified: VerifiedDocument, subject_key: bytes, salt: bytes, now_us: int
    ) -> Attestation:
        """Sign an attestation binding `subject_key` to the commitment of the verified data.
        The caller keeps `salt` and the personal data in the compliance table."""
        if len(subject_key) != 32 or len(salt) < 16:
            raise IdentityError(IdentityReason.MALFORMED, "a 32-byte key and a ≥16-byte salt")
        unsigned = Attestation(
            provider=self.name,
            subject_key=base64.b64encode(subject_key).decode(),
            commit=commitment(salt, verified.personal_data()),
            method=f"document:{verified.document_type.value}",
            level="document",
            issued_us=now_us,
            expires_us=now_us + self.validity_us,
        )
        signature = self._key.sign(ATTESTATION_PREFIX + canonical_json(unsigned.body()))
        return Attestation(
            **(unsigned.body() | {"signature": base64.b64encode(signature).decode()})
        )
