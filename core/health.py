"""Real checks of each backing service, each bounded in time."""

from __future__ import annotations

import asyncio
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def _channel_layer_round_trip() -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel("health.")
    probe = {"type": "health.probe", "nonce": uuid.uuid4().hex}
    await layer.send(channel, probe)
    received = await asyncio.wait_for(layer.receive(channel), timeout=2)
    if received.get("nonce") != probe["nonce"]:
        raise RuntimeError("channel layer returned another message")


def check_channel_layer() -> None:
    async_to_sync(_channel_layer_round_trip)()


def check_broker() -> None:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return  # embedded default: tasks run in-process, there is no broker
    import redis

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


class Degraded(Exception):
    """A check that fails without making the service unusable: /healthz answers 200 `degraded`."""


def check_workers() -> None:
    from celery import current_app

    if current_app.conf.task_always_eager:
        return  # embedded default: tasks run in the web process
    from core.workers import heartbeat_age

    age = heartbeat_age()
    if age is None or age > settings.WORKER_HEARTBEAT_STALE_SECONDS:
        raise Degraded("no recent heartbeat from a Celery worker")


CHECKS = {"database": check_database, "channel_layer": check_channel_layer, "broker": check_broker,
          "workers": check_workers}


def run_checks() -> dict[str, str]:
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Degraded:
            results[name] = "degraded"
        except Exception as exc:  # noqa: BLE001 - any failure means the check fails
            results[name] = f"error: {type(exc).__name__}"
    return results
