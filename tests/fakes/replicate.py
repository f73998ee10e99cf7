"""A Replicate-compatible HTTP server for tests (https://replicate.com/docs/reference/http).

It checks the bearer token and serves realistic objects for: GET /v1/account,
GET /v1/models/{owner}/{name}[/versions], POST /v1/files (multipart), POST /v1/predictions
(422 on invalid input), GET /v1/predictions/{id}, POST /v1/predictions/{id}/cancel and
GET /v1/webhooks/default/secret. Tests drive it:

- `script(status, ...)` queues canned answers (429 with Retry-After, 5xx, delays) for the
  next matching requests, before normal handling;
- `advance(prediction_id, status, ...)` moves a prediction on (logs, output, predict_time);
- `deliver_webhook(prediction_id, url=...)` POSTs the prediction to a URL as Replicate does,
  signed with the Standard Webhooks scheme and `webhook_secret` (also served by the API).

Use the `replicate_server` fixture (registered for every test directory by tests/conftest.py), or FakeReplicate directly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import httpx
import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.fakes.http import LoopbackServer, Recorded, Reply

TERMINAL = {"succeeded", "failed", "canceled"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error(status: int, title: str, detail: str, **extra: Any) -> Reply:
    return Reply(
        status=status,
        body={"title": title, "detail": detail, "status": status, **extra},
        headers={"Content-Type": "application/problem+json"},
    )


@dataclass
class Scripted:
    reply: Reply
    path: str | None
    times: int


@dataclass
class FakeReplicate:
    token: str = field(default_factory=lambda: "r8_" + secrets.token_hex(16))
    model: str = "simpletuner/advanced-trainer"
    version: str = field(default_factory=lambda: secrets.token_hex(32))
    webhook_secret: str = field(default_factory=lambda: "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())
    username: str = "simpletuner-ops"

    def __post_init__(self) -> None:
        self.predictions: dict[str, dict[str, Any]] = {}
        self.files: dict[str, bytes] = {}
        self._script: list[Scripted] = []
        self.server = LoopbackServer(self._handle)

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeReplicate:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    @property
    def base_url(self) -> str:
        return self.server.url() + "/v1"

    @property
    def requests(self) -> list[Recorded]:
        return self.server.requests

    def requests_to(self, method: str, path_prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith("/v1" + path_prefix)]

    # --- test controls -------------------------------------------------------------------------

    def script(
        self,
        status: int = 200,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        path: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` requests (whose path starts with /v1+`path`) like this."""
        default = {"title": "Scripted", "detail": f"scripted {status}", "status": status}
        reply = Reply(status=status, body=default if body is None else body, headers=headers or {}, delay=delay)
        with self.server.lock:
            self._script.append(Scripted(reply=reply, path=path, times=times))

    def clear_script(self) -> None:
        """Forget the scripted answers not yet given (the outage is over)."""
        with self.server.lock:
            self._script.clear()

    def advance(
        self,
        prediction_id: str,
        status: str,
        *,
        logs: str | None = None,
        output: Any = None,
        error: str | None = None,
        predict_time: float | None = None,
    ) -> dict[str, Any]:
        with self.server.lock:
            prediction = self.predictions[prediction_id]
            prediction["status"] = status
            if status != "starting" and prediction["started_at"] is None:
                prediction["started_at"] = _now()
            if status in TERMINAL:
                prediction["completed_at"] = _now()
            if logs is not None:
                prediction["logs"] = logs
            if output is not None:
                prediction["output"] = output
            if error is not None:
                prediction["error"] = error
            if predict_time is not None:
                prediction["metrics"] = {"predict_time": predict_time, "total_time": predict_time + 1.5}
            return dict(prediction)

    def sign(self, body: bytes, *, msg_id: str, timestamp: int, secret: str | None = None) -> dict[str, str]:
        """Standard Webhooks headers for `body` (what Replicate sends). Written out by hand, not
        with the standardwebhooks package the server verifies with: an independent signer."""
        key = base64.b64decode((secret or self.webhook_secret).removeprefix("whsec_"))
        digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": "v1," + base64.b64encode(digest).decode(),
            "Content-Type": "application/json",
        }

    def deliver_webhook(
        self,
        prediction_id: str,
        *,
        url: str | None = None,
        secret: str | None = None,
        msg_id: str | None = None,
        timestamp: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POST the prediction to its webhook URL (or `url`), signed as Replicate signs."""
        prediction = self.predictions[prediction_id]
        body = json.dumps(prediction).encode()
        signed = self.sign(
            body,
            msg_id=msg_id or f"msg_{secrets.token_hex(12)}",
            timestamp=timestamp if timestamp is not None else int(time.time()),
            secret=secret,
        )
        target = url or prediction["webhook"]
        return httpx.post(target, content=body, headers={**signed, **(headers or {})}, timeout=10)

    # --- the API -------------------------------------------------------------------------------

    def _scripted(self, recorded: Recorded) -> Reply | None:
        with self.server.lock:
            for entry in self._script:
                if entry.path is None or recorded.path.startswith("/v1" + entry.path):
                    entry.times -= 1
                    if entry.times <= 0:
                        self._script.remove(entry)
                    return entry.reply
        return None

    def _handle(self, recorded: Recorded) -> Reply:
        scripted = self._scripted(recorded)
        if scripted is not None:
            return scripted
        scheme, _, value = recorded.headers.get("Authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "token") or not hmac.compare_digest(value.encode(), self.token.encode()):
            return _error(401, "Unauthenticated", "You did not pass a valid authentication token")
        return self._route(recorded)

    def _route(self, r: Recorded) -> Reply:
        path = r.path.split("?", 1)[0].rstrip("/")
        parts = path.split("/")[2:]  # after "/v1"
        if r.method == "GET" and parts == ["account"]:
            return Reply(body={"type": "user", "username": self.username, "name": "Ops", "github_url": None})
        if r.method == "GET" and parts == ["webhooks", "default", "secret"]:
            return Reply(body={"key": self.webhook_secret})
        if parts[:1] == ["models"] and r.method == "GET":
            return self._models(parts[1:])
        if parts == ["files"] and r.method == "POST":
            return self._upload(r)
        if parts[:1] == ["predictions"]:
            return self._predictions(r, parts[1:])
        return _error(404, "Not found", f"no route for {r.method} {path}")

    def _version_object(self) -> dict[str, Any]:
        return {
            "id": self.version,
            "created_at": "2025-01-01T00:00:00.000000Z",
            "cog_version": "0.13.6",
            "openapi_schema": {"components": {"schemas": {"Input": {"required": ["config_json"]}}}},
        }

    def _models(self, parts: list[str]) -> Reply:
        if "/".join(parts[:2]) != self.model:
            return _error(404, "Not found", "The requested model does not exist")
        if parts[2:] == ["versions"]:
            return Reply(body={"next": None, "previous": None, "results": [self._version_object()]})
        owner, name = parts[:2]
        return Reply(
            body={
                "url": f"https://replicate.com/{self.model}",
                "owner": owner,
                "name": name,
                "visibility": "public",
                "latest_version": self._version_object(),
            }
        )

    def _upload(self, r: Recorded) -> Reply:
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {r.headers.get('Content-Type', '')}\r\n\r\n".encode() + r.body
        )
        parts = [p for p in message.iter_parts() if p.get_param("name", header="content-disposition") == "content"]
        if not parts:
            return _error(422, "Invalid request", "multipart field 'content' is required")
        data = parts[0].get_payload(decode=True) or b""
        file_id = secrets.token_hex(10)
        self.files[file_id] = data
        return Reply(
            status=201,
            body={
                "id": file_id,
                "name": parts[0].get_filename(),
                "content_type": parts[0].get_content_type(),
                "size": len(data),
                "etag": hashlib.md5(data).hexdigest(),
                "checksums": {"sha256": hashlib.sha256(data).hexdigest()},
                "metadata": {},
                "created_at": _now(),
                "expires_at": None,
                "urls": {"get": f"{self.base_url}/files/{file_id}"},
            },
        )

    def _predictions(self, r: Recorded, parts: list[str]) -> Reply:
        if not parts and r.method == "POST":
            return self._create(r)
        prediction = self.predictions.get(parts[0]) if parts else None
        if prediction is None:
            return _error(404, "Not found", "The requested prediction does not exist")
        if len(parts) == 1 and r.method == "GET":
            return Reply(body=prediction)
        if parts[1:] == ["cancel"] and r.method == "POST":
            if prediction["status"] not in TERMINAL:
                self.advance(prediction["id"], "canceled")
            return Reply(body=prediction)
        return _error(405, "Method not allowed", f"{r.method} not allowed here")

    def _create(self, r: Recorded) -> Reply:
        try:
            body = r.json()
        except ValueError:
            return _error(400, "Invalid JSON", "the request body is not JSON")
        invalid = []
        if not isinstance(body, dict) or body.get("version") != self.version:
            invalid.append({"type": "invalid", "field": "version", "description": "version does not exist"})
        if not isinstance(body, dict) or not isinstance(body.get("input"), dict) or "config_json" not in body["input"]:
            invalid.append({"type": "required", "field": "input.config_json", "description": "config_json is required"})
        if invalid:
            return _error(
                422, "Input validation failed", "; ".join(i["description"] for i in invalid), invalid_fields=invalid
            )
        prediction_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(26))
        prediction = {
            "id": prediction_id,
            "model": self.model,
            "version": self.version,
            "input": body["input"],
            "logs": "",
            "output": None,
            "data_removed": False,
            "error": None,
            "status": "starting",
            "created_at": _now(),
            "started_at": None,
            "completed_at": None,
            "webhook": body.get("webhook"),
            "webhook_events_filter": body.get("webhook_events_filter"),
            "metrics": {},
            "urls": {
                "get": f"{self.base_url}/predictions/{prediction_id}",
                "cancel": f"{self.base_url}/predictions/{prediction_id}/cancel",
                "web": f"https://replicate.com/p/{prediction_id}",
            },
        }
        with self.server.lock:
            self.predictions[prediction_id] = prediction
        return Reply(status=201, body=prediction)


@pytest.fixture
def replicate_server() -> Iterator[FakeReplicate]:
    """A running FakeReplicate, stopped after the test."""
    fake = FakeReplicate().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def replicate(
    replicate_server: FakeReplicate,
    settings: SettingsWrapper,
    monkeypatch: pytest.MonkeyPatch,
    db: None,
) -> FakeReplicate:
    """The replicate provider enabled and pointed at a running Replicate-compatible server,
    with no REPLICATE_WEBHOOK_SECRET (so a webhook secret is fetched from that server)."""
    from providers.config import provider_config_get

    settings.REPLICATE_API_BASE_URL = replicate_server.base_url
    settings.SIMPLETUNER_HTTP_BACKOFF = 0.01
    monkeypatch.setenv("REPLICATE_API_TOKEN", replicate_server.token)
    monkeypatch.delenv("REPLICATE_WEBHOOK_SECRET", raising=False)
    config = provider_config_get("replicate")
    config.enabled = True
    config.save()
    return replicate_server
