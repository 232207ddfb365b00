"""A local, stateful stand-in for Stripe's API, at the HTTP boundary.

Stripe cannot be reached from the tests, so the official ``stripe`` library is pointed
(``STRIPE_API_BASE``) at this server instead:

- ``localstripe`` (a fake Stripe, from PyPI) runs as a subprocess on a loopback port and keeps
  the payment intents, charges and refunds.
- In front of it, a small HTTP server adds what localstripe lacks and Stripe does: Checkout
  Sessions (create, retrieve, expire), idempotency keys (the same key answers the same
  response; other parameters with it are refused), and refusing a refund larger than what is
  left of the payment. Everything else is passed to localstripe.

The tests play the customer and Stripe's webhook sender: :meth:`StripeStandIn.pay` completes
a session as a customer paying on the hosted page would (a real payment intent, confirmed with
a test card, in localstripe) and returns the ``checkout.session.completed`` event;
:func:`sign` signs an event's body exactly as Stripe signs webhooks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode

SECRET_KEY = "sk_test_inkwell_stand_in"
WEBHOOK_SECRET = "whsec_inkwell_stand_in"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def nested(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (``line_items[0][price_data][unit_amount]=800``) as dicts and
    lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node: Any = root
        for part, following in zip(parts, parts[1:] + [None], strict=True):
            if following is None:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    return _lists(root)


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        if node and all(key.isdigit() for key in node):
            return [_lists(node[key]) for key in sorted(node, key=int)]
        return {key: _lists(value) for key, value in node.items()}
    return node


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe would send with ``payload``."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class StripeStandIn:
    """The state of the stand-in: sessions, idempotent answers, refunded amounts."""

    def __init__(self, localstripe_url: str) -> None:
        self.localstripe_url = localstripe_url
        self.url = ""
        self.sessions: dict[str, dict[str, Any]] = {}
        self.answers: dict[str, tuple[str, int, bytes]] = {}
        self.refunded: dict[str, int] = {}
        self.requests: list[tuple[str, str]] = []
        #: Path prefixes whose next requests answer with an error: (status, how many more).
        self.failures: dict[str, tuple[int, int]] = {}
        self.lock = threading.RLock()

    # --- what the tests do -------------------------------------------------------------------

    def pay(self, session_id: str) -> dict[str, Any]:
        """The customer pays on the hosted page: a payment intent for the session's amount is
        confirmed with a test card in localstripe, the session completes, and the event
        Stripe would send is returned."""
        session = self.sessions[session_id]
        method = self._localstripe("POST", "/v1/payment_methods", {
            "type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12",
            "card[exp_year]": "2034", "card[cvc]": "123"})
        intent = self._localstripe("POST", "/v1/payment_intents", {
            "amount": str(session["amount_total"]), "currency": session["currency"],
            "payment_method": method["id"], "confirm": "true"})
        assert intent["status"] == "succeeded", intent
        session.update(status="complete", payment_status="paid", payment_intent=intent["id"])
        return self.event("checkout.session.completed", session)

    def expire(self, session_id: str) -> dict[str, Any]:
        session = self.sessions[session_id]
        session.update(status="expired", url=None)
        return self.event("checkout.session.expired", session)

    def event(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        return {"id": "evt_" + secrets.token_hex(12), "object": "event", "type": kind,
                "api_version": "2025-01-01", "created": int(time.time()),
                "data": {"object": dict(obj)}, "livemode": False}

    def fail(self, prefix: str, status: int, times: int = 1) -> None:
        """Answer the next ``times`` requests to paths starting with ``prefix`` with ``status``."""
        self.failures[prefix] = (status, times)

    def refunds_of(self, intent: str) -> list[dict[str, Any]]:
        return list(self._localstripe("GET", f"/v1/refunds?payment_intent={intent}")["data"])

    # --- the HTTP side -----------------------------------------------------------------------

    def handle(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        self.requests.append((method, path))
        for prefix, (status, times) in list(self.failures.items()):
            if path.startswith(prefix):
                if times <= 1:
                    del self.failures[prefix]
                else:
                    self.failures[prefix] = (status, times - 1)
                kind = "api_error" if status >= 500 else "card_error"
                return status, _error(kind, "The stand-in was told to fail.")
        key = headers.get("idempotency-key")
        if method == "POST" and key:
            with self.lock:
                known = self.answers.get(key)
                if known is not None:
                    if known[0] != path + "?" + body.decode():
                        return 400, _error("idempotency_error", "Keys for idempotent requests can "
                                           "only be used with the same parameters they were first used with.")
                    return known[1], known[2]
                status, answer = self._route(method, path, body)
                if status < 500:
                    self.answers[key] = (path + "?" + body.decode(), status, answer)
                return status, answer
        return self._route(method, path, body)

    def _route(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        params = nested(parse_qsl(body.decode(), keep_blank_values=True))
        if path == "/v1/checkout/sessions" and method == "POST":
            return 200, json.dumps(self._create_session(params)).encode()
        if path.startswith("/v1/checkout/sessions/"):
            session_id = path.split("/")[4]
            session = self.sessions.get(session_id)
            if session is None:
                return 404, _error("invalid_request_error", f"No such checkout.session: '{session_id}'")
            if path.endswith("/expire") and method == "POST":
                if session["status"] != "open":
                    return 400, _error("invalid_request_error", "Only open sessions can be expired.")
                session.update(status="expired", url=None)
            return 200, json.dumps(session).encode()
        if path == "/v1/refunds" and method == "POST":
            return self._refund(params, body)
        return self._forward(method, path, body)

    def _create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        lines = params.get("line_items", [])
        amount = sum(int(line["price_data"]["unit_amount"]) * int(line.get("quantity", 1))
                     for line in lines)
        currency = lines[0]["price_data"]["currency"] if lines else "usd"
        session_id = "cs_test_" + secrets.token_hex(12)
        session = {
            "id": session_id, "object": "checkout.session", "mode": params.get("mode"),
            "status": "open", "payment_status": "unpaid", "amount_total": amount,
            "currency": currency, "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata", {}), "customer_email": params.get("customer_email"),
            "expires_at": int(params["expires_at"]) if params.get("expires_at") else None,
            "success_url": params.get("success_url"), "cancel_url": params.get("cancel_url"),
            "payment_intent": None, "url": f"{self.url}/pay/{session_id}", "livemode": False,
        }
        self.sessions[session_id] = session
        return session

    def _refund(self, params: dict[str, Any], body: bytes) -> tuple[int, bytes]:
        intent = params.get("payment_intent", "")
        with self.lock:
            paid = self._localstripe("GET", f"/v1/payment_intents/{intent}")
            if "error" in paid:
                return 404, json.dumps(paid).encode()
            amount = int(params.get("amount") or paid["amount"])
            left = int(paid["amount"]) - self.refunded.get(intent, 0)
            if amount > left:
                return 400, _error("invalid_request_error",
                                   f"Refund amount ({amount}) is greater than unrefunded amount ({left}).",
                                   code="amount_too_large")
            status, answer = self._forward("POST", "/v1/refunds", body)
            if status == 200:
                self.refunded[intent] = self.refunded.get(intent, 0) + amount
            return status, answer

    def _forward(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        request = urllib.request.Request(self.localstripe_url + path, data=body if method == "POST" else None,
                                         method=method, headers=_auth())
        if method == "POST":
            request.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def _localstripe(self, method: str, path: str, data: dict[str, str] | None = None) -> dict[str, Any]:
        body = urlencode(data or {}).encode()
        return dict(json.loads(self._forward(method, path, body)[1]))


def _auth() -> dict[str, str]:
    token = base64.b64encode(f"{SECRET_KEY}:".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _error(kind: str, message: str, code: str | None = None) -> bytes:
    error = {"type": kind, "message": message}
    if code:
        error["code"] = code
    return json.dumps({"error": error}).encode()


def _handler(stand_in: StripeStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, answer = stand_in.handle(method, self.path, body, headers)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.send_header("Request-Id", "req_" + secrets.token_hex(6))
            self.end_headers()
            self.wfile.write(answer)

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def do_DELETE(self) -> None:
            self._answer("DELETE")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def running() -> Iterator[StripeStandIn]:
    """localstripe and the stand-in in front of it, each on a free loopback port."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "localstripe", "--port", str(port), "--from-scratch"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        localstripe_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("localstripe did not start") from None
                time.sleep(0.1)
        stand_in = StripeStandIn(localstripe_url)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stand_in))
        stand_in.url = f"http://127.0.0.1:{server.server_port}"
        thread = threading.Thread(target=server.serve_forever, name="stripe-stand-in", daemon=True)
        thread.start()
        try:
            yield stand_in
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
