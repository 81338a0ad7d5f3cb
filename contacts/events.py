"""Every event payload contacts emits, built in one place."""

from __future__ import annotations

from accounts.apis import public_user_data
from accounts.models import User
from streams.services import PendingEvent

CONTACT_JOINED = "contact.joined"


def contact_joined(*, owner_id: object, joined: User) -> PendingEvent:
    """Told to `owner`, whose stored book holds the number `joined` registered with."""
    return PendingEvent(user_id=str(owner_id), type=CONTACT_JOINED, data={"user": public_user_data(joined)})
