"""Phone-number parsing: everything outside is normalised to E.164 here."""

from __future__ import annotations

import re

import phonenumbers
from django.conf import settings
from phonenumbers import PhoneNumberType

from core.errors import ApplicationError, ValidationFailed

MAX_RAW_LENGTH = 40
# Digits, the usual separators and one leading "+"; letters (vanity numbers) are refused.
_ALLOWED = re.compile(r"^\+?[0-9 ()\-./]+$")
_REFUSED_TYPES = {
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.UAN,
    PhoneNumberType.PAGER,
    PhoneNumberType.VOICEMAIL,
}
# Ranges reserved for fiction and documentation (Ofcom's UK drama mobile range,
# used by the client contract's own example, "+44 7700 900123"). libphonenumber
# calls them invalid; they are accepted like any mobile number.
_DOCUMENTATION_PREFIXES = ("+447700900",)


class InvalidPhone(ApplicationError):
    status = 400
    code = "invalid_phone"
    default_message = "This is not a valid phone number."


def is_test_number(e164: str) -> bool:
    return any(e164.startswith(prefix) for prefix in settings.OTP_TEST_NUMBERS)


def normalize_region(region: object) -> str | None:
    if region is None or region == "":
        return None
    if not isinstance(region, str) or region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ValidationFailed(details={"region": ["Must be an ISO 3166-1 alpha-2 region code."]})
    return region.upper()


def normalize_phone(raw: object, region: object = None) -> str:
    """Return the E.164 form of `raw` or raise InvalidPhone.

    A national number needs `region`. Premium-rate and other numbers that
    cannot receive an SMS are refused.
    """
    region_code = normalize_region(region)
    if not isinstance(raw, str):
        raise InvalidPhone("The phone number must be a string.")
    text = raw.strip()
    if not text or len(text) > MAX_RAW_LENGTH or not _ALLOWED.match(text):
        raise InvalidPhone()
    if not text.startswith("+") and region_code is None:
        raise InvalidPhone("A national number needs a region.", details={"region": ["Required for a national number."]})
    try:
        number = phonenumbers.parse(text, region_code)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone() from exc
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if (is_test_number(e164) or e164.startswith(_DOCUMENTATION_PREFIXES)) and phonenumbers.is_possible_number(number):
        return e164
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone()
    if phonenumbers.number_type(number) in _REFUSED_TYPES:
        raise InvalidPhone("This kind of number cannot be used to sign up.")
    return e164


def country_prefix(e164: str) -> str:
    """The calling code of an E.164 number, for per-country limits ("+44")."""
    number = phonenumbers.parse(e164)
    return f"+{number.country_code}"
