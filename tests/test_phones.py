"""Phone normalization (E.164) and masking."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from geo_router.errors import InvalidPhoneError
from geo_router.intake.phones import mask_phone, normalize_phone


@pytest.mark.parametrize(
    "text",
    [
        "0812-3456-7890",
        "+62 812 3456 7890",
        "+62 812-3456-7890",
        "081234567890",
        "(0812) 3456.7890",
        "6281234567890",
        "+6281234567890",
    ],
)
def test_formats_of_one_number_are_one_number(text: str) -> None:
    assert normalize_phone(text) == "+6281234567890"


def test_landline_and_foreign_numbers() -> None:
    assert normalize_phone("021 555 1234") == "+62215551234"
    assert normalize_phone("+1 650-253-0000") == "+16502530000"
    assert normalize_phone("(650) 253-0000", region="US") == "+16502530000"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "not a number"),
        ("hello", "not a number"),
        ("12", "too short"),
        ("0812", "too short"),
        ("1234567890123456789", "too long"),
        ("+999 1234567", "unknown country code"),
        ("0000000000", "not a valid number for region ID"),
        ("9" * 100, "too long"),
    ],
)
def test_invalid_numbers_say_why(text: str, reason: str) -> None:
    with pytest.raises(InvalidPhoneError) as info:
        normalize_phone(text)
    assert info.value.detail["reason"] == reason
    assert reason in info.value.message
    assert not text or text not in info.value.message  # the number stays out of messages


def test_non_text_refused() -> None:
    with pytest.raises(InvalidPhoneError):
        normalize_phone(None)  # type: ignore[arg-type]


def test_mask_phone() -> None:
    assert mask_phone("+6281234567890") == "+62812****7890"
    assert mask_phone("+62215551234") == "+62*****1234"
    assert mask_phone("+16502530000") == "+1650***0000"
    with pytest.raises(InvalidPhoneError):
        mask_phone("nonsense")


@settings(max_examples=300, deadline=None)
@example(text="+68300")  # a four-digit number still hides three digits
@example(text="+683 7000")
@given(text=st.text(max_size=40) | st.from_regex(r"\+?[0-9 ()\-.]{0,24}", fullmatch=True))
def test_only_invalid_phone_error_and_idempotent(text: str) -> None:
    try:
        e164 = normalize_phone(text)
    except InvalidPhoneError:
        return
    assert e164.startswith("+") and e164[1:].isdigit()
    assert normalize_phone(e164) == e164
    masked = mask_phone(e164)
    shown_head, _, rest = masked.partition("*")
    shown_tail = rest.lstrip("*")
    assert masked.count("*") >= 3 and len(masked) == len(e164)
    assert e164.startswith(shown_head) and e164.endswith(shown_tail)
    assert len(shown_tail) >= min(2, len(e164) - len(shown_head) - 3)


@settings(max_examples=200, deadline=None)
@given(national=st.from_regex(r"8[1-9][0-9]{7,9}", fullmatch=True))
def test_national_and_international_forms_agree(national: str) -> None:
    try:
        local = normalize_phone("0" + national)
    except InvalidPhoneError:
        return
    assert normalize_phone("+62 " + national) == local
    # ("62" + national without "+" is ambiguous: it may itself be a valid national number.)
