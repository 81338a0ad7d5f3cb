import base64
import hashlib
import hmac
import json
import secrets
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
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


# --- Values that must travel through the broker ----------------------------------------
#
# Celery messages sit in Redis (and its dumps) in clear text, so an OTP code or a
# push's text that must travel with a task is sealed first: Fernet (AES-128-CBC +
# HMAC-SHA256, authenticated, timestamped) under a key derived from SECRET_KEY by
# HKDF with one `purpose` per use, so a sealed push can never be opened as an OTP.


@lru_cache(maxsize=32)
def _fernet(secret: str, purpose: str) -> Fernet:
    key = HKDF(algorithm=SHA256(), length=32, salt=b"messenger-broker-seal", info=purpose.encode()).derive(
        secret.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def seal(purpose: str, value: object) -> str:
    """Encrypt a JSON-able value for a task argument; `unseal` with the same purpose opens it."""
    return _fernet(settings.SECRET_KEY, purpose).encrypt(json.dumps(value).encode()).decode("ascii")


def unseal(purpose: str, token: str, *, max_age: int | None = None) -> Any:
    """The sealed value; raises `cryptography.fernet.InvalidToken` when it was tampered with,
    sealed for another purpose or key, or is older than `max_age` seconds."""
    return json.loads(_fernet(settings.SECRET_KEY, purpose).decrypt(token.encode("ascii"), ttl=max_age))
