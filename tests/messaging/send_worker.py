"""A separate OS process that sends batches through the socket's path (the async pool) and REST's
(Django's connection), for the concurrency tests: `python -m tests.messaging.send_worker <spec json>`.

The spec: {"rounds": n, "requests": [{"sender", "conversation_id"}, ...], "label": str}. Every round
sends one message per request, as one async batch on odd rounds and one sync batch on even ones.
Prints one JSON line: {"sent": [message ids], "errors": [codes]}.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from core import asyncdb  # noqa: E402
from core.errors import ApplicationError  # noqa: E402
from messaging.services import SendRequest, message_send_many, message_send_many_async  # noqa: E402


def main() -> None:
    spec = json.loads(sys.argv[1])
    sent: list[str] = []
    errors: list[str] = []

    def requests(round_: int) -> list[SendRequest]:
        return [SendRequest(r["sender"], r["conversation_id"], {
            "client_id": str(uuid.uuid4()), "type": "text", "text": f"{spec['label']} {round_}"})
            for r in spec["requests"]]

    def collect(results: list) -> None:
        for result in results:
            if isinstance(result, ApplicationError):
                errors.append(result.code)
            else:
                sent.append(result[0]["id"])

    async def run() -> None:
        for round_ in range(spec["rounds"]):
            if round_ % 2:
                collect(await message_send_many_async(requests(round_)))
            else:
                collect(await asyncio.to_thread(message_send_many, requests(round_)))
        await asyncdb.close()

    asyncio.run(run())
    print(json.dumps({"sent": sent, "errors": errors}), flush=True)


if __name__ == "__main__":
    main()
