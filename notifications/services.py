"""Push notifications: who gets one, collapsing, idempotent delivery, retries.

Flow: a service that creates an event calls `push_notify` inside its
transaction; after commit the `notifications.push_fanout` task picks the
user's devices that have a push token and no live socket and writes one
`PushDelivery` row each (unique per dedupe key and device); each row is sent
by `notifications.push_deliver`, at once or, for messages, after a short
collapse window in which later messages of the same conversation join it.
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts.models import Device
from core import metrics
from core.crypto import seal
from notifications.backends import get_push_backend
from notifications.models import OPEN_STATUSES, DeliveryStatus, PushDelivery
from notifications.providers.base import Failed, Outcome, PushMessage, Retry, Sent, TokenGone
from streams.presence import device_ids_online

logger = logging.getLogger(__name__)

MAX_KIND_LENGTH = 32
MAX_TITLE_LENGTH = 256
MAX_BODY_LENGTH = 1024
# What a push says instead of the text when the user turned message_preview_in_push off.
GENERIC_MESSAGE_BODY = "New message"
PUSH_SEAL_PURPOSE = "notifications.push_fanout"


def push_notify(
    *,
    user_id: object,
    kind: str,
    title: str,
    body: str,
    conversation_id: str | None = None,
    message_id: str | None = None,
    muted: bool = False,
    collapse_key: str | None = None,
    data: dict | None = None,
    dedupe_key: str | None = None,
) -> None:
    """Push `kind` to every offline device of the user, once the caller's transaction commits.

    Call inside the transaction that creates the event: a rollback sends
    nothing. `muted` sends a silent data push (badge only, no alert). The
    dedupe key defaults to `<kind>:<message_id>`, or a fresh id fixed now, so
    retries of the tasks below never send the same push twice. `data` must be
    plain JSON and must not carry message text (it is not filtered by
    message_preview_in_push beyond the keys "text" and "body").
    """
    if not dedupe_key:
        dedupe_key = f"{kind}:{message_id}" if message_id else f"{kind}:{uuid.uuid4()}"
    kwargs = {
        "user_id": str(user_id),
        "kind": kind[:MAX_KIND_LENGTH],
        # The text (a name, a message) never sits in the broker in clear text.
        "sealed": seal(PUSH_SEAL_PURPOSE, {"title": title[:MAX_TITLE_LENGTH], "body": body[:MAX_BODY_LENGTH]}),
        "conversation_id": str(conversation_id) if conversation_id else None,
        "message_id": str(message_id) if message_id else None,
        "muted": bool(muted),
        "collapse_key": collapse_key,
        # Plain JSON for the broker (ids may arrive as UUIDs).
        "data": json.loads(json.dumps(data or {}, default=str)),
        "dedupe_key": dedupe_key[:200],
    }
    transaction.on_commit(partial(_enqueue_fanout, kwargs))


def _enqueue_fanout(kwargs: dict[str, Any]) -> None:
    from notifications.tasks import push_fanout as push_fanout_task

    try:
        push_fanout_task.apply_async(kwargs=kwargs)
    except Exception:  # noqa: BLE001 - after commit: the sender must not see it
        # The broker is down: keep the push in an outbox row (core.durable) that the sweep sends
        # once the broker is back. Only this failure path writes a row; the send path does not.
        logger.warning("could not enqueue push fan-out (kind=%s); kept for the sweep", kwargs["kind"])
        _spill_fanout(kwargs)


def _spill_fanout(kwargs: dict[str, Any]) -> None:
    from core.durable import outbox_enqueue

    try:
        with transaction.atomic():
            outbox_enqueue("notifications.push_fanout_outbox",
                           key=f"push:{kwargs['dedupe_key']}:{kwargs['user_id']}"[:200], kwargs=kwargs)
    except Exception:
        logger.exception("push fan-out lost (kind=%s): neither the broker nor the database took it",
                         kwargs["kind"])


# --- Presence seam ---------------------------------------------------------------------


def _online_device_ids(device_ids: Iterable[object]) -> set[str]:
    """The devices with a live socket (presence kept by the socket layer, with expiry)."""
    return {str(device_id) for device_id in device_ids_online([str(d) for d in device_ids])}


def _badge(*, user_id: object) -> int:
    """The user's total unread count, from PUSH_BADGE_COUNTER (0 while it is unset)."""
    path = settings.PUSH_BADGE_COUNTER
    if not path:
        return 0
    try:
        return max(0, int(import_string(path)(user_id=user_id)))
    except Exception:
        # A wrong badge is better than no push at all; the error is loud in the logs.
        logger.exception("PUSH_BADGE_COUNTER %s failed", path)
        return 0


# --- Fan-out ---------------------------------------------------------------------------


def _collapsible(*, kind: str, conversation_id: str | None) -> bool:
    return bool(conversation_id) and kind in settings.PUSH_COLLAPSE_KINDS and settings.PUSH_COLLAPSE_SECONDS > 0


def _window_key(*, device_id: object, conversation_id: str, kind: str) -> str:
    return f"push:window:{kind}:{device_id}:{conversation_id}"


def push_fanout(
    *,
    user_id: str,
    kind: str,
    title: str,
    body: str,
    dedupe_key: str,
    conversation_id: str | None = None,
    message_id: str | None = None,
    muted: bool = False,
    collapse_key: str | None = None,
    data: dict | None = None,
) -> list[int]:
    """Write the user's deliveries and schedule them; safe to run twice. Returns the rows scheduled."""
    devices = list(
        Device.objects.filter(user_id=user_id, user__is_active=True, revoked_at__isnull=True)
        .exclude(push_token="")
        .exclude(push_provider="")
        .values_list("pk", flat=True)
    )
    online = _online_device_ids(devices)
    targets = [device_id for device_id in devices if str(device_id) not in online]
    if not targets:
        return []
    if collapse_key is None and conversation_id:
        collapse_key = f"{kind}:{conversation_id}"
    PushDelivery.objects.bulk_create(
        [
            PushDelivery(
                dedupe_key=dedupe_key, device_id=device_id, kind=kind, conversation_id=conversation_id or "",
                message_id=message_id or "", title=title, body=body, muted=muted,
                collapse_key=collapse_key or "", data=data or {},
            )
            for device_id in targets
        ],
        ignore_conflicts=True,
    )
    rows = list(
        PushDelivery.objects.filter(dedupe_key=dedupe_key, device_id__in=targets, status=DeliveryStatus.PENDING)
        .values_list("pk", "device_id")
    )
    scheduled = []
    for delivery_id, device_id in rows:
        if _schedule(delivery_id=delivery_id, device_id=device_id, kind=kind, conversation_id=conversation_id):
            scheduled.append(delivery_id)
    return scheduled


def _schedule(*, delivery_id: int, device_id: object, kind: str, conversation_id: str | None) -> bool:
    """Queue the delivery now, or open a collapse window unless one is already open for it."""
    from notifications.tasks import push_deliver as push_deliver_task

    if not _collapsible(kind=kind, conversation_id=conversation_id):
        push_deliver_task.apply_async(args=[delivery_id])
        return True
    window = settings.PUSH_COLLAPSE_SECONDS
    # The marker outlives the window a little; if it expires before its task runs, a new
    # window opens and the older task simply finds nothing left to send.
    key = _window_key(device_id=device_id, conversation_id=conversation_id or "", kind=kind)
    if cache.add(key, delivery_id, timeout=window + 30):
        push_deliver_task.apply_async(args=[delivery_id], countdown=window)
        return True
    return False


# --- Delivery --------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryLater:
    delivery_id: int
    countdown: float


def _max_countdown() -> float:
    """The longest countdown to give Celery. An ETA task the Redis broker holds longer than its
    visibility timeout is handed out a second time, so longer waits are split into hops."""
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    return max(1.0, visibility / 2)


def retry_delay(*, attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter, never sooner than the provider's Retry-After."""
    ceiling = min(settings.PUSH_RETRY_MAX_SECONDS, settings.PUSH_RETRY_BASE_SECONDS * 2 ** max(0, attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, settings.PUSH_RETRY_AFTER_MAX_SECONDS))
    return delay


def _claim(*, delivery_id: int, claim: str) -> PushDelivery | None:
    """Lock and claim the row to send (and the open rows it collapses); None when there is nothing to do.

    A task redelivered after its worker died finds its own SENDING row by its
    claim (the Celery task id) and sends it again: the one at-least-once
    window, between the provider accepting the push and this row turning SENT.
    """
    now = timezone.now()
    row = PushDelivery.objects.select_for_update().filter(status=DeliveryStatus.SENDING, claim=claim).first()
    if row is None:
        row = PushDelivery.objects.select_for_update().filter(pk=delivery_id).first()
        if row is None:
            return None
        stale = row.claimed_at is not None and row.claimed_at < now - timedelta(
            seconds=settings.PUSH_SENDING_LEASE_SECONDS
        )
        if not (row.status == DeliveryStatus.PENDING or (row.status == DeliveryStatus.SENDING and stale)):
            return None
    group = [row]
    if _collapsible(kind=row.kind, conversation_id=row.conversation_id):
        others = list(
            PushDelivery.objects.select_for_update()
            .filter(device_id=row.device_id, conversation_id=row.conversation_id, kind=row.kind,
                    status=DeliveryStatus.PENDING)
            .exclude(pk=row.pk)
        )
        group = sorted([row, *others], key=lambda r: (r.created_at, r.pk))
    latest = group[-1]
    for older in group[:-1]:
        older.status = DeliveryStatus.COLLAPSED
        older.collapsed_into = latest
        older.title = older.body = ""
        older.save(update_fields=["status", "collapsed_into", "title", "body", "updated_at"])
    latest.count = sum(r.count for r in group)
    latest.status = DeliveryStatus.SENDING
    latest.claim = claim
    latest.claimed_at = now
    latest.attempts += 1
    latest.save(update_fields=["count", "status", "claim", "claimed_at", "attempts", "updated_at"])
    return latest


def _message(*, row: PushDelivery, device: Device) -> PushMessage:
    title, body, data = row.title, row.body, dict(row.data)
    if row.muted:
        title = body = ""
    elif not device.user.message_preview_in_push:
        data.pop("text", None)
        data.pop("body", None)
        if row.kind == "message.new":
            body = GENERIC_MESSAGE_BODY if row.count == 1 else f"{row.count} new messages"
    return PushMessage(
        device_id=str(device.pk),
        provider=device.push_provider,
        token=device.push_token,
        kind=row.kind,
        conversation_id=row.conversation_id or None,
        message_id=row.message_id or None,
        badge=_badge(user_id=device.user_id),
        title=title,
        body=body,
        silent=row.muted,
        count=row.count,
        collapse_key=row.collapse_key or None,
        data=data,
        urgent=row.kind == "call.ring",
        voip=row.kind == "call.ring",
        # A ring delivered after the call was given up (45 s) is noise.
        ttl=settings.PUSH_CALL_TTL_SECONDS if row.kind == "call.ring" else settings.PUSH_TTL_SECONDS,
    )


def _finish(row: PushDelivery, status: str, *, error: str = "") -> None:
    row.status = status
    row.last_error = error[:200]
    row.title = row.body = ""
    row.claim = ""
    fields = ["status", "last_error", "title", "body", "claim", "updated_at"]
    if status == DeliveryStatus.SENT:
        row.sent_at = timezone.now()
        fields.append("sent_at")
    row.save(update_fields=fields)


def push_deliver(*, delivery_id: int, claim: str) -> RetryLater | None:
    """Send one delivery (with whatever collapsed into it). Safe to run any number of times.

    `claim` is the Celery task id, stable across retries and redeliveries.
    Returns RetryLater on a transient provider error while attempts remain.
    """
    with transaction.atomic():
        hint = (
            PushDelivery.objects.filter(pk=delivery_id)
            .values("kind", "conversation_id", "device_id", "status", "not_before")
            .first()
        )
        if hint and hint["status"] == DeliveryStatus.PENDING and hint["not_before"]:
            wait = (hint["not_before"] - timezone.now()).total_seconds()
            if wait > 1:
                # A long Retry-After is waited out in hops shorter than the broker's visibility timeout.
                return RetryLater(delivery_id=delivery_id, countdown=min(wait, _max_countdown()))
        if hint and _collapsible(kind=hint["kind"], conversation_id=hint["conversation_id"]):
            # Close the window before taking its rows: a message committed after this
            # point opens a new window instead of joining rows already taken.
            cache.delete(_window_key(device_id=hint["device_id"], conversation_id=hint["conversation_id"],
                                     kind=hint["kind"]))
        row = _claim(delivery_id=delivery_id, claim=claim)
        if row is None:
            return None
        device = Device.objects.select_related("user").filter(pk=row.device_id).first()
        skip = None
        if device is None or device.revoked_at is not None or not device.user.is_active:
            skip = "device revoked"
        elif not device.push_token or not device.push_provider:
            skip = "no push token"
        elif str(device.pk) in _online_device_ids([device.pk]):
            # It connected during the window: the socket delivers the event.
            skip = "device online"
        if skip:
            _finish(row, DeliveryStatus.SKIPPED, error=skip)
            return None
        message = _message(row=row, device=device)

    # The provider call runs outside any transaction: no row lock is held over the network.
    outcome = _send(message)
    return _record(row=row, message=message, outcome=outcome)


def _send(message: PushMessage) -> Outcome:
    try:
        return get_push_backend().send(message)
    except SoftTimeLimitExceeded:
        return Retry(reason="task time limit")
    except Exception as exc:
        logger.exception("push provider %s raised", message.provider)
        return Failed(reason=f"{type(exc).__name__}")


def _record(*, row: PushDelivery, message: PushMessage, outcome: Outcome) -> RetryLater | None:
    with transaction.atomic():
        attempts_left = row.attempts < settings.PUSH_MAX_ATTEMPTS
        metrics.PUSH.labels(message.provider, _outcome_label(outcome, attempts_left=attempts_left)).inc()
        if isinstance(outcome, Sent):
            _finish(row, DeliveryStatus.SENT)
        elif isinstance(outcome, TokenGone):
            # Only the token that failed: the app may have registered a new one meanwhile.
            Device.objects.filter(pk=message.device_id, push_provider=message.provider,
                                  push_token=message.token).update(
                push_token="", push_provider="", push_updated_at=timezone.now()
            )
            _finish(row, DeliveryStatus.TOKEN_GONE, error=outcome.reason)
            logger.info("push token removed for device %s (%s)", message.device_id, outcome.reason)
        elif isinstance(outcome, Retry) and row.attempts < settings.PUSH_MAX_ATTEMPTS:
            delay = retry_delay(attempt=row.attempts, retry_after=outcome.after)
            row.status = DeliveryStatus.PENDING
            row.claim = ""
            row.last_error = outcome.reason[:200]
            row.not_before = timezone.now() + timedelta(seconds=delay)
            row.save(update_fields=["status", "claim", "last_error", "not_before", "updated_at"])
            return RetryLater(delivery_id=row.pk, countdown=min(delay, _max_countdown()))
        elif isinstance(outcome, Retry):
            _finish(row, DeliveryStatus.FAILED, error=f"retries exhausted: {outcome.reason}")
        else:
            _finish(row, DeliveryStatus.FAILED, error=outcome.reason)
            logger.warning("push %s failed for good: %s", row.pk, outcome.reason)
    return None


def _outcome_label(outcome: Outcome, *, attempts_left: bool) -> str:
    """The `outcome` label of messenger_push_total: sent, pruned (token gone), retried, failed."""
    if isinstance(outcome, Sent):
        return "sent"
    if isinstance(outcome, TokenGone):
        return "pruned"
    if isinstance(outcome, Retry) and attempts_left:
        return "retried"
    return "failed"


# --- Housekeeping ----------------------------------------------------------------------


def push_forget_user(*, user_id: object) -> None:
    """Account deletion step (ACCOUNT_DELETION_STEPS): drop the user's open pushes and their text."""
    PushDelivery.objects.filter(device__user_id=user_id, status__in=OPEN_STATUSES).update(
        status=DeliveryStatus.SKIPPED, title="", body="", data={}, claim="", last_error="account deleted",
        updated_at=timezone.now(),
    )


def push_sweep() -> dict[str, int]:
    """Re-queue deliveries whose task was lost; delete finished rows past retention.

    A row is lost when it stayed PENDING well past its window or retry time
    (the enqueue failed, or a window marker outlived a task that never ran), or
    SENDING past the lease (its worker died and the broker did not redeliver).
    """
    from notifications.tasks import push_deliver as push_deliver_task

    now = timezone.now()
    grace = timedelta(seconds=settings.PUSH_COLLAPSE_SECONDS + settings.PUSH_SWEEP_GRACE_SECONDS)
    lease = timedelta(seconds=settings.PUSH_SENDING_LEASE_SECONDS)
    pending = PushDelivery.objects.filter(status=DeliveryStatus.PENDING, updated_at__lt=now - grace).exclude(
        not_before__gt=now - grace
    )
    stuck = PushDelivery.objects.filter(status=DeliveryStatus.SENDING, claimed_at__lt=now - lease)
    requeued = 0
    for delivery_id in list(pending.values_list("pk", flat=True)[:1000]) + list(
        stuck.values_list("pk", flat=True)[:1000]
    ):
        push_deliver_task.apply_async(args=[delivery_id])
        requeued += 1
    deleted, _ = (
        PushDelivery.objects.exclude(status__in=OPEN_STATUSES)
        .filter(updated_at__lt=now - timedelta(days=settings.PUSH_DELIVERY_RETENTION_DAYS))
        .delete()
    )
    return {"requeued": requeued, "deleted": deleted}
