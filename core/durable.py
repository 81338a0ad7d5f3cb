"""Background work that survives database and broker outages, and runs once.

The public API, for every app that creates work a user expects:

`resilient_task(name=..., **celery_options)`
    A drop-in for `shared_task`. An outage (the database or the broker
    unavailable: `OUTAGE_ERRORS`) is not the task's fault: it retries with
    exponential backoff and full jitter, capped at `TASK_RETRY_BACKOFF_MAX`
    seconds (minutes, not seconds), and never gives up on it. Other exceptions
    follow the task's own `autoretry_for` / `max_retries` (a bug or a poison
    input is not retried forever).

`durable_task(name=..., lease_seconds=..., max_attempts=..., atomic=...)` and `outbox_enqueue(...)`
    The outbox, for work whose cause is not itself queryable. Call
    `outbox_enqueue("app.task", key=..., kwargs={...})` inside the transaction
    that creates the cause: it writes an `OutboxTask` row there and sends the
    task after commit (a broker that is down is logged, never raised into the
    request: the row stays). The task runs `func(**kwargs)` and marks the row
    done; the beat job `core.outbox_sweep` re-sends pending rows whose task was
    lost (never enqueued, worker killed, retries exhausted), so the work runs
    once the database and the broker are back.

    Exactly once: with `atomic=True` the task claims the row with
    `SELECT ... FOR UPDATE SKIP LOCKED` and runs the effect and marks the row
    done in that one transaction (use it for effects that fit in one
    transaction). With `atomic=False` (the default) the row is claimed by a
    conditional update with a lease, and the effect must be idempotent by its
    own constraint (it may commit in batches; a rerun after a crash resumes).

    A failure that is not an outage counts an attempt, with the traceback in
    `last_error`; after `max_attempts` the row turns `failed` (a poison input):
    visible in the Django admin (Core > Outbox tasks), where "Run again" puts it
    back once the cause is fixed.

Moments notifications, for example::

    @durable_task(name="moments.notify_comment", atomic=True)
    def notify_comment(comment_id: str) -> None:
        services.comment_notify(comment_id=comment_id)

    # in services.comment_create, inside its transaction:
    outbox_enqueue("moments.notify_comment", key=f"moments.comment:{comment.pk}",
                   kwargs={"comment_id": str(comment.pk)})
"""

from __future__ import annotations

import logging
import random
import traceback
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from celery import Task, current_app, shared_task
from django import db
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import F, Q
from django.utils import timezone

from core.models import OutboxState, OutboxTask

logger = logging.getLogger(__name__)


def _outage_errors() -> tuple[type[BaseException], ...]:
    import kombu.exceptions
    import psycopg
    import redis.exceptions

    return (
        OperationalError,  # Django's: connection refused, server closed the connection, pool timeout
        InterfaceError,  # Django's: a connection already closed
        psycopg.OperationalError,
        kombu.exceptions.OperationalError,  # the broker, while publishing a retry or a next step
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        ConnectionError,
    )


# Errors that mean "a backing service is unavailable", never "this input is bad".
OUTAGE_ERRORS: tuple[type[BaseException], ...] = _outage_errors()


def is_outage(exc: BaseException) -> bool:
    return isinstance(exc, OUTAGE_ERRORS)


def retry_countdown(retries: int, *, base: float = 2.0, cap: float | None = None) -> float:
    """Exponential backoff with jitter: about base * 2**retries seconds, at most `cap`
    (TASK_RETRY_BACKOFF_MAX), never less than half of it (so a fleet of tasks that
    failed together does not come back together)."""
    cap = float(settings.TASK_RETRY_BACKOFF_MAX if cap is None else cap)
    return random.uniform(0.5, 1.0) * min(cap, base * 2 ** min(retries, 30))


class ResilientTask(Task):
    """A task class whose outage errors retry forever, with capped backoff and jitter."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except OUTAGE_ERRORS as exc:
            request = self.request
            if request.called_directly or request.is_eager:
                raise
            countdown = retry_countdown(request.retries)
            # Connections broken by the outage go now, not at the next task's start.
            db.connections.close_all()
            logger.warning("task %s hit an outage (%s); retrying in %.0f s", self.name, type(exc).__name__,
                           countdown)
            # max_retries one past the current count: an outage never exhausts the budget.
            raise self.retry(exc=exc, countdown=countdown, max_retries=request.retries + 1) from None


def resilient_task(*, name: str, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    """`shared_task` with ResilientTask as the base (see the module docstring)."""
    options.setdefault("acks_late", True)
    options.setdefault("reject_on_worker_lost", True)
    if options.get("autoretry_for"):
        options["dont_autoretry_for"] = (*OUTAGE_ERRORS, *options.get("dont_autoretry_for", ()))
    return shared_task(name=name, base=ResilientTask, **options)


# --- The outbox -------------------------------------------------------------------------------


def outbox_enqueue(task: str, *, key: str, kwargs: dict[str, Any] | None = None) -> None:
    """Promise to run `task(**kwargs)` once; call inside the transaction of the cause.

    `task` must be a `durable_task`. A pending row with the same `key` absorbs the
    call; a done (or failed) one is reset to pending, so the work runs again (use a
    key per cause when every cause needs its own run). `kwargs` must be plain JSON.
    """
    now = timezone.now()
    resend = now + timedelta(seconds=settings.OUTBOX_RESEND_SECONDS)
    row = OutboxTask(task=task, key=key[:200], kwargs=kwargs or {}, run_after=resend)
    OutboxTask.objects.bulk_create(
        [row], update_conflicts=True, unique_fields=["key"],
        # A rerun asked for while one runs: the running claim is dropped, so its
        # "done" does not land and the row runs again.
        update_fields=["task", "kwargs", "state", "attempts", "last_error", "run_after", "claimed_by",
                       "claimed_until", "updated_at"],
    )
    outbox_id = OutboxTask.objects.filter(key=row.key).values_list("pk", flat=True).get()
    transaction.on_commit(lambda: _send(task, outbox_id))


def _send(task: str, outbox_id: int) -> bool:
    """Hand the row to the broker; False (logged) when the broker is unavailable."""
    try:
        if current_app.conf.task_always_eager:
            if task not in current_app.tasks:
                current_app.loader.import_default_modules()  # the apps' tasks modules, as a worker does
            current_app.tasks[task].apply(args=[outbox_id])
        else:
            current_app.send_task(task, args=[outbox_id], retry=True,
                                  retry_policy={"max_retries": 1, "interval_start": 0.2, "interval_step": 0.2})
        return True
    except Exception:
        logger.warning("could not enqueue %s (outbox row %s); the sweep will", task, outbox_id, exc_info=True)
        return False


def durable_task(*, name: str, lease_seconds: int = 900, max_attempts: int = 5, atomic: bool = False,
                 **options: Any) -> Callable[[Callable[..., Any]], Any]:
    """Register `func(**kwargs)` as the Celery task `name` run from outbox rows.

    lease_seconds: how long a claim (atomic=False) holds the row against the sweep;
    set it above the task's time limit. max_attempts: failures that are not outages
    before the row is marked failed.
    """
    options.setdefault("time_limit", 300)
    options.setdefault("soft_time_limit", options["time_limit"] - 10)

    def decorator(func: Callable[..., Any]) -> Any:
        def run(self: Task, outbox_id: int) -> str:
            if atomic:
                return _run_atomic(self, func, outbox_id, max_attempts=max_attempts)
            return _run_leased(self, func, outbox_id, lease=timedelta(seconds=lease_seconds),
                               max_attempts=max_attempts)

        run.__name__ = func.__name__
        run.__doc__ = func.__doc__
        task = resilient_task(name=name, bind=True, **options)(run)
        task.func = func
        return task

    return decorator


def _run_leased(task: Task, func: Callable[..., Any], outbox_id: int, *, lease: timedelta,
                max_attempts: int) -> str:
    # A redelivery or retry of the same message keeps its task id, so it may take over its own claim.
    token = task.request.id or f"local-{uuid.uuid4()}"
    now = timezone.now()
    claimed = (OutboxTask.objects.filter(pk=outbox_id, state=OutboxState.PENDING)
               .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now) | Q(claimed_by=token))
               .update(claimed_by=token, claimed_until=now + lease, updated_at=now))
    if not claimed:
        return "skipped"  # done, failed, or running elsewhere
    kwargs = OutboxTask.objects.filter(pk=outbox_id).values_list("kwargs", flat=True).get()
    try:
        func(**kwargs)
    except OUTAGE_ERRORS:
        raise
    except Exception as exc:  # noqa: BLE001 - recorded on the row, retried a bounded number of times
        return _failed(task, outbox_id, exc, max_attempts=max_attempts, token=token)
    OutboxTask.objects.filter(pk=outbox_id, claimed_by=token, state=OutboxState.PENDING).update(
        state=OutboxState.DONE, done_at=timezone.now(), claimed_by="", claimed_until=None,
        updated_at=timezone.now())
    return "done"


def _run_atomic(task: Task, func: Callable[..., Any], outbox_id: int, *, max_attempts: int) -> str:
    with transaction.atomic():
        row = (OutboxTask.objects.select_for_update(skip_locked=True)
               .filter(pk=outbox_id, state=OutboxState.PENDING).first())
        if row is None:
            return "skipped"  # done, failed, or being run by another worker right now
        try:
            with transaction.atomic():
                func(**row.kwargs)
        except OUTAGE_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 - the savepoint rolled the effect back
            failure = exc
        else:
            row.state = OutboxState.DONE
            row.done_at = timezone.now()
            row.save(update_fields=["state", "done_at", "updated_at"])
            return "done"
    return _failed(task, outbox_id, failure, max_attempts=max_attempts, token=None)


def _failed(task: Task, outbox_id: int, exc: BaseException, *, max_attempts: int, token: str | None) -> str:
    """Count a failure that is not an outage; retry later, or mark the row failed (poison)."""
    attempts = OutboxTask.objects.filter(pk=outbox_id).values_list("attempts", flat=True).get() + 1
    poisoned = attempts >= max_attempts
    countdown = retry_countdown(attempts)
    rows = OutboxTask.objects.filter(pk=outbox_id, state=OutboxState.PENDING)
    if token is not None:
        rows = rows.filter(claimed_by=token)
    rows.update(
        attempts=F("attempts") + 1,
        last_error="".join(traceback.format_exception(exc))[-4000:],
        state=OutboxState.FAILED if poisoned else OutboxState.PENDING,
        run_after=timezone.now() + timedelta(seconds=countdown + settings.OUTBOX_RESEND_SECONDS),
        claimed_by="", claimed_until=None, updated_at=timezone.now(),
    )
    if poisoned:
        logger.error("task %s failed %d times (outbox row %s): marked failed, see the admin", task.name,
                     attempts, outbox_id)
        return "failed"
    logger.warning("task %s failed (%s, attempt %d of %d, outbox row %s)", task.name, type(exc).__name__,
                   attempts, max_attempts, outbox_id)
    if task.request.is_eager or task.request.called_directly:
        return "retry later"  # no broker to wait out a countdown: the sweep sends it again
    raise task.retry(countdown=countdown, max_retries=task.request.retries + 1)


def outbox_sweep(*, limit: int = 500) -> dict[str, int]:
    """Beat: re-send pending rows whose time has come (their task was lost), forget old done rows."""
    now = timezone.now()
    due = list(
        OutboxTask.objects.filter(state=OutboxState.PENDING, run_after__lte=now)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .order_by("run_after").values_list("pk", "task")[:limit]
    )
    sent = 0
    for outbox_id, task in due:
        if not _send(task, outbox_id):
            break  # the broker is down: the next sweep tries again
        OutboxTask.objects.filter(pk=outbox_id, state=OutboxState.PENDING).update(
            run_after=timezone.now() + timedelta(seconds=settings.OUTBOX_RESEND_SECONDS))
        sent += 1
    deleted, _ = OutboxTask.objects.filter(
        state=OutboxState.DONE, updated_at__lt=now - timedelta(days=settings.OUTBOX_RETENTION_DAYS)).delete()
    return {"sent": sent, "deleted": deleted}


def outbox_retry(*, ids: list[int]) -> int:
    """Put failed (or stuck) rows back to pending and send them (the admin's "Run again")."""
    now = timezone.now()
    count = OutboxTask.objects.filter(pk__in=ids).exclude(state=OutboxState.DONE).update(
        state=OutboxState.PENDING, attempts=0, run_after=now + timedelta(seconds=settings.OUTBOX_RESEND_SECONDS),
        claimed_by="", claimed_until=None, updated_at=now)
    for outbox_id, task in OutboxTask.objects.filter(pk__in=ids, state=OutboxState.PENDING).values_list("pk", "task"):
        transaction.on_commit(lambda outbox_id=outbox_id, task=task: _send(task, outbox_id))
    return count
