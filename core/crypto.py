import hashlib
import hmac
import secrets

from django.conf import settings


def keyed_hash(purpose: str, value: str, *, secret: str | None = None) -> str:
    """HMAC-SHA256 hex of `value` under a key derived from the secret and `purpose`.

    Used wherever a value (a phone number, a code) must be matched later but
    never read back: a stolen database alone does not reveal it.
    """
    key = hashlib.sha256(f"{purpose}:{secret or settings.SECRET_KEY}".encode()).digest()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def token_digest(token: str) -> str:
    """Bearer tokens have 256 bits of entropy, so a plain SHA-256 is enough to store them."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def new_numeric_code(digits: int = 6) -> str:
    return f"{secrets.randbelow(10**digits):0{digits}d}"


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
