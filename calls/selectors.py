"""Reads: the call log, one call, and TURN credentials.

A call is visible to its caller and to the callees it rang (not to a callee
who blocked the caller and so was never told of it); anyone else gets NotFound.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections import defaultdict
from typing import Any

from django.conf import settings

from calls.events import duration_ms
from calls.models import Call, CallParticipant
from core.errors import NotFound
from core.keyset import keyset_cursor_decode, keyset_cursor_encode
from core.serializers import timestamp


def _public(call: Call, *, viewer_id: object, participants: list[CallParticipant]) -> dict[str, Any]:
    return {
        "call_id": str(call.pk),
        "conversation_id": str(call.conversation_id),
        "caller_id": str(call.caller_id),
        "direction": "outgoing" if str(call.caller_id) == str(viewer_id) else "incoming",
        "group": call.is_group,
        "media": call.media,
        "remote_control": call.remote_control,
        "control_granted": call.control_granted,
        "state": call.state,
        "outcome": call.outcome or None,
        "reason": call.end_reason or None,
        "duration_ms": duration_ms(call),
        "created_at": timestamp(call.created_at),
        "answered_at": timestamp(call.answered_at),
        "ended_at": timestamp(call.ended_at),
        "participants": [{"user_id": str(p.user_id), "role": p.role, "state": p.state} for p in participants],
    }




def call_log(*, user_id: object, before: str | None = None, limit: int = 50) -> dict[str, Any]:
    """The user's calls, newest first: `{"calls", "cursor", "has_more"}`; page on with
    `before=<cursor>`. Three queries whatever the page size."""
    rows = CallParticipant.objects.filter(user_id=user_id, silenced=False)
    if before:
        at, call_id = keyset_cursor_decode(before)
        rows = rows.filter(created_at__lte=at).exclude(created_at=at, call_id__gte=call_id)
    page = list(rows.order_by("-created_at", "-call_id").values_list("call_id", flat=True)[: limit + 1])
    has_more = len(page) > limit
    page = page[:limit]
    calls = {c.pk: c for c in Call.objects.filter(pk__in=page)}
    participants: dict[uuid.UUID, list[CallParticipant]] = defaultdict(list)
    for p in CallParticipant.objects.filter(call_id__in=page).order_by("pk"):
        participants[p.call_id].append(p)
    ordered = [calls[pk] for pk in page if pk in calls]
    return {
        "calls": [_public(c, viewer_id=user_id, participants=participants[c.pk]) for c in ordered],
        "cursor": keyset_cursor_encode(ordered[-1].created_at, ordered[-1].pk) if ordered else (before or ""),
        "has_more": has_more,
    }


def call_get_for_participant(*, user_id: object, call_id: object) -> dict[str, Any]:
    try:
        pk = uuid.UUID(str(call_id))
    except ValueError as exc:
        raise NotFound() from exc
    if not CallParticipant.objects.filter(call_id=pk, user_id=user_id, silenced=False).exists():
        raise NotFound()
    call = Call.objects.get(pk=pk)
    participants = list(CallParticipant.objects.filter(call=call).order_by("pk"))
    return _public(call, viewer_id=user_id, participants=participants)



def turn_credentials(*, user_id: object, now: float | None = None) -> dict[str, Any]:
    """coturn's REST scheme (use-auth-secret): username "<expiry unix time>:<user id>",
    credential base64(HMAC-SHA1(TURN_SECRET, username)). Without TURN configured the
    list is empty and peers rely on host and STUN candidates."""
    if not settings.TURN_SECRET or not settings.TURN_URLS:
        return {"urls": [], "username": "", "credential": "", "ttl": 0}
    ttl = settings.TURN_TTL
    username = f"{int(now if now is not None else time.time()) + ttl}:{user_id}"
    digest = hmac.new(settings.TURN_SECRET.encode(), username.encode(), hashlib.sha1).digest()
    return {"urls": list(settings.TURN_URLS), "username": username,
            "credential": base64.b64encode(digest).decode(), "ttl": ttl}
