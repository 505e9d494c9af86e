"""Phone numbers: one canonical E.164 form per number, and a masked form for display.

A number that comes in is parsed once, at the edge, into a :class:`PhoneNumber` (E.164,
masked form, HMAC); that value is what the services and repositories pass along, so nothing
downstream parses, hashes or decrypts the number again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import phonenumbers
from phonenumbers import NumberParseException, ValidationResult
from phonenumbers import PhoneNumber as ParsedNumber

from geo_router.errors import InvalidPhoneError

__all__ = ["MAX_PHONE_TEXT", "PhoneHasher", "PhoneNumber", "mask_phone", "normalize_phone"]

#: Longer input is refused before parsing (phonenumbers' own limit is 250).
MAX_PHONE_TEXT = 64

_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    NumberParseException.NOT_A_NUMBER: "not a number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}

_POSSIBLE_REASONS = {
    ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "invalid length",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "too short (local number without area code)",
}


def _invalid(reason: str, region: str) -> InvalidPhoneError:
    # The number itself stays out of the message: messages end up in logs.
    return InvalidPhoneError(
        f"invalid phone number: {reason}",
        detail={"field": "phone", "reason": reason, "region": region},
    )


class PhoneHasher(Protocol):
    """What hashes numbers for lookups (``Secrets``)."""

    def hash_phone(self, e164: str) -> str:
        """HMAC of an E.164 number."""
        ...


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    """A number parsed once: E.164 (encrypted at rest), masked (shown), HMAC (looked up).

    The E.164 form and the hash are left out of ``repr`` so a stray log line cannot leak them.
    """

    e164: str = field(repr=False)
    masked: str
    hash: str = field(repr=False)

    @classmethod
    def parse(cls, text: str, region: str, hasher: PhoneHasher) -> PhoneNumber:
        """Parse and check ``text`` (see :func:`normalize_phone`), mask it and hash it.

        Raises
        ------
        InvalidPhoneError
            As :func:`normalize_phone`.
        """
        number = _parse(text, region)
        e164 = _e164(number)
        return cls(e164, _mask(number), hasher.hash_phone(e164))


def _parse(text: str, region: str | None) -> ParsedNumber:
    """The one place a number is parsed and checked."""
    shown_region = region or "international"
    if not isinstance(text, str) or not text.strip():
        raise _invalid("not a number", shown_region)
    if len(text) > MAX_PHONE_TEXT:
        raise _invalid("too long", shown_region)
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        raise _invalid(_PARSE_REASONS.get(exc.error_type, "not a number"), shown_region) from None
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible != ValidationResult.IS_POSSIBLE:
        raise _invalid(_POSSIBLE_REASONS.get(possible, "not a number"), shown_region)
    if not phonenumbers.is_valid_number(number):
        raise _invalid(f"not a valid number for region {shown_region}", shown_region)
    return number


def _e164(number: ParsedNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _mask(number: ParsedNumber) -> str:
    national = phonenumbers.national_significant_number(number)
    # at least three digits stay hidden, even in four-digit numbers (Niue, for one)
    tail = 4 if len(national) >= 8 else max(0, min(2, len(national) - 3))
    head = 3 if len(national) >= 10 else 0
    hidden = len(national) - head - tail
    return f"+{number.country_code}{national[:head]}{'*' * hidden}{national[-tail:]}"


def normalize_phone(text: str, region: str = "ID") -> str:
    """The E.164 form of a phone number (``0812-3456-7890`` -> ``+6281234567890``).

    Parameters
    ----------
    text
        A number as people write it: national (``0812 3456 7890``) or international
        (``+62 812-3456-7890``, ``0062...``), with spaces, dashes, dots or brackets.
    region
        ISO 3166 region for national numbers (the city profile's ``phone_region``).

    Raises
    ------
    InvalidPhoneError
        ``detail["reason"]`` says why: not a number, too short, too long, invalid length,
        unknown country code, or not a valid number for the region.
    """
    return _e164(_parse(text, region))


def mask_phone(e164: str) -> str:
    """A number with its middle digits hidden, for non-admins: ``+62812****7890``.

    Keeps the country code, the first three national digits when there are ten or more, and
    the last four (at most two for short numbers); at least three digits are always masked.

    Raises
    ------
    InvalidPhoneError
        When ``e164`` is not a number in E.164 form.
    """
    return _mask(_parse(e164, None))
