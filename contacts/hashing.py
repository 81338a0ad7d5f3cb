"""The two hashes of contact discovery.

- The discovery hash, `hmac-sha256(pepper, E.164)`, which clients compute and
  the registered-number index holds (it can be brute-forced by anyone who has
  the pepper, which clients do: it only keeps raw numbers off the wire).
- The book key, `HMAC(book secret, "<pepper_id>:<discovery hash>")`, the only
  form an uploaded address book is stored in. The book secret lives in the
  settings, never in the database, so a stolen database alone cannot be
  brute-forced back into anyone's address book.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from django.conf import settings

BOOK_KEY_PURPOSE = "contacts-book"


def discovery_digest(secret: bytes, e164: str) -> bytes:
    return hmac.new(bytes(secret), e164.encode(), hashlib.sha256).digest()


def _book_key_pads() -> tuple[hashlib._Hash, hashlib._Hash]:
    # The same key derivation as core.crypto.keyed_hash, so a book key equals
    # keyed_hash(BOOK_KEY_PURPOSE, ..., secret=CONTACTS_BOOK_SECRET or SECRET_KEY).
    secret = settings.CONTACTS_BOOK_SECRET or settings.SECRET_KEY
    key = hashlib.sha256(f"{BOOK_KEY_PURPOSE}:{secret}".encode()).digest().ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    return inner, outer


def book_keys(pepper_id: str, hex_digests: Iterable[str]) -> list[bytes]:
    """Book keys of lower-case hex discovery hashes, in order.

    HMAC-SHA256 spelled out over precomputed pad states (RFC 2104): the same
    bytes as `hmac.new`, at half the cost for a 5,000-hash book.
    """
    inner, outer = _book_key_pads()
    prefix = f"{pepper_id}:".encode()
    keys = []
    for hex_digest in hex_digests:
        mac_in = inner.copy()
        mac_in.update(prefix + hex_digest.encode())
        mac_out = outer.copy()
        mac_out.update(mac_in.digest())
        keys.append(mac_out.digest())
    return keys
