"""A local stand-in of a payment provider speaking the protocol of payments/providers/http.py.

Stateful like the real thing: payments are created once per Idempotency-Key,
stay `pending` until the test settles them (as the payer would at the
provider's checkout), and each settlement yields the webhook the provider
would send, signed with the webhook secret. `fail_next` makes the next
requests answer 503 (an outage), `requests` records everything received.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from payments.providers.http import signature_header


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class FakePaymentProvider:
    def __init__(self, *, api_key: str = "sk_test_local", webhook_secret: str = "whsec_local") -> None:  # noqa: S107
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.lock = threading.Lock()
        self.payments: dict[str, dict[str, Any]] = {}
        self.by_key: dict[str, str] = {}
        self.requests: list[Received] = []
        self.fail_next = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, payload = provider.answer(
                    Received(method, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                encoded = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(encoded)))
                self.end_headers()
                self.wfile.write(encoded)

            def do_POST(self) -> None:
                self._handle("POST")

            def do_GET(self) -> None:
                self._handle("GET")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> FakePaymentProvider:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- The provider's side of the protocol ---------------------------------------------------

    def answer(self, received: Received) -> tuple[int, Any]:
        with self.lock:
            self.requests.append(received)
            if self.fail_next > 0:
                self.fail_next -= 1
                return 503, {"error": {"message": "temporarily unavailable"}}
            if received.headers.get("authorization") != f"Bearer {self.api_key}":
                return 401, {"error": {"message": "bad api key"}}
            url = urlsplit(received.path)
            if received.method == "POST" and url.path == "/v1/payments":
                return self._create(received)
            if received.method == "GET" and url.path == "/v1/payments":
                reference = parse_qs(url.query).get("reference", [""])[0]
                found = [p for p in self.payments.values() if p["reference"] == reference]
                return (200, found[0]) if found else (404, {"error": {"message": "no such payment"}})
            if received.method == "GET" and url.path.startswith("/v1/payments/"):
                payment = self.payments.get(url.path.rsplit("/", 1)[1])
                return (200, payment) if payment else (404, {"error": {"message": "no such payment"}})
            return 404, {"error": {"message": "no route"}}

    def _create(self, received: Received) -> tuple[int, Any]:
        key = received.headers.get("idempotency-key")
        if not key:
            return 400, {"error": {"message": "Idempotency-Key required"}}
        if key in self.by_key:
            return 200, self.payments[self.by_key[key]]
        request = json.loads(received.body)
        if not isinstance(request.get("amount"), int) or request["amount"] <= 0:
            return 400, {"error": {"message": "amount must be a positive integer"}}
        payment_id = f"pay_{secrets.token_hex(8)}"
        self.payments[payment_id] = {
            "id": payment_id, "status": "pending", "amount": request["amount"], "currency": request["currency"],
            "reference": request["reference"],
            "next_action": {"type": "redirect", "url": f"{self.url}/checkout/{payment_id}"},
        }
        self.by_key[key] = payment_id
        return 200, self.payments[payment_id]

    # --- What the test does in place of the payer --------------------------------------------------

    def settle(self, payment_id: str, status: str = "succeeded", *, amount: int | None = None,
               signed_at: int | None = None, secret: str | None = None) -> tuple[dict[str, str], bytes]:
        """The payer pays (or fails to): the payment moves and the signed webhook is returned."""
        with self.lock:
            payment = self.payments[payment_id]
            payment["status"] = status
            payment.pop("next_action", None)
            if amount is not None:
                payment["amount"] = amount
            if status == "failed":
                payment["failure_reason"] = "card declined"
            event = {"id": f"evt_{secrets.token_hex(8)}", "type": f"payment.{status}", "data": dict(payment),
                     "created": int(time.time())}
        body = json.dumps(event).encode()
        header = signature_header(secret=secret or self.webhook_secret, body=body, timestamp=signed_at)
        return {"Payments-Signature": header, "Content-Type": "application/json"}, body

    def payment_for(self, topup_id: str) -> dict[str, Any]:
        with self.lock:
            return next(p for p in self.payments.values() if p["reference"] == topup_id)

    def creates(self) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.method == "POST" and r.path == "/v1/payments"]
