"""The audit chain's cryptography: canonical encoding, entry and head MACs, and the key.

Each entry's MAC is HMAC-SHA256, under the audit key, of the canonical encoding of all its
fields plus the previous entry's MAC. The head checkpoint (the AuditHead row, outside the
entries table) carries the last sequence and MAC and a MAC over itself, so a truncated tail
or a rewritten head is detected. Version 1 of the canonical encoding (never change it in
place; add a version):

    UTF-8 bytes of JSON with keys sorted, separators "," and ":", ASCII only
    (json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)) of

    entry: {"kind": "audit-entry", "v": 1, "sequence": int, "timestamp": str,
            "event_type": str, "actor_username": str, "actor_api_key": str, "actor_ip": str,
            "target_type": str, "target_id": str, "action": str, "details": object,
            "prev_mac": str}
    head:  {"kind": "audit-head", "v": 1, "last_sequence": int, "last_mac": str,
            "anchor_sequence": int, "anchor_mac": str, "pruned_through": int, "key_id": str}

    timestamp: UTC, "%Y-%m-%dT%H:%M:%S.%fZ" (always six digits of microseconds)
    MACs: 64 lowercase hex digits; "" for "none" (the first entry after an empty anchor)
    details: normalised by `normalise_details` before it is stored and before it is MACed.

The "kind" field separates entry MACs from head MACs, so one can never stand in for the other.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from cloudops import secrets
from cloudops.auditing import AuditRefused
from cloudops.keyfile import KeyFileError, read_or_create_key

CHAIN_VERSION = 1
AUDIT_KEY_NAME = "SIMPLETUNER_AUDIT_KEY"
# Shorter keys are accepted (an operator may already have one) but health warns about them.
RECOMMENDED_KEY_LENGTH = 32

# The entry fields covered by the MAC, in the order selectors read them.
ENTRY_FIELDS = (
    "sequence",
    "timestamp",
    "event_type",
    "actor_username",
    "actor_api_key",
    "actor_ip",
    "target_type",
    "target_id",
    "action",
    "details",
)
TEXT_LIMITS = {
    "event_type": 64,
    "actor_username": 150,
    "actor_api_key": 32,
    "actor_ip": 45,
    "target_type": 64,
    "target_id": 128,
    "action": 64,
}
# Integers outside this range are stored as strings: MySQL's JSON type keeps only 64 bits.
_INT_LIMIT = 2**63 - 1


class AuditChainError(AuditRefused):
    """The chain cannot be extended safely (bad head checkpoint, key problems)."""


class AuditKeyUnavailable(AuditChainError):
    """No audit key could be read: a secret store failed, or the key file is unusable."""


class AuditKeyMismatch(AuditChainError):
    """The configured key is not the key that signed the chain's head."""


@dataclass(frozen=True)
class AuditKey:
    secret: bytes = field(repr=False)
    # Which secrets provider supplied it ("environment", ...), or "file" for the generated key.
    source: str
    path: Path | None = None

    @property
    def generated(self) -> bool:
        return self.path is not None

    @property
    def key_id(self) -> str:
        """A public fingerprint, so a wrong key is reported as such instead of as edits."""
        return hmac.new(self.secret, b"cloudops-audit-key-id", hashlib.sha256).hexdigest()[:16]


def audit_key() -> AuditKey:
    """SIMPLETUNER_AUDIT_KEY from the secrets chain, else the generated key file.

    When a secret store fails, an existing key file is still used: the head records the
    fingerprint of the key that signed the chain, so if the real key lives in the failed
    store the file key is refused as a mismatch (appends stay fail-closed), and if the
    chain was signed with the file key an outage of an unrelated store changes nothing.
    A new key file is never created during an outage.
    """
    found = secrets.lookup(AUDIT_KEY_NAME)
    if found.value is not None:
        return AuditKey(secret=found.value.encode(), source=found.source or "unknown")
    path = settings.AUDIT_KEY_FILE
    if found.errors and not path.exists():
        raise AuditKeyUnavailable(f"{AUDIT_KEY_NAME} could not be read: {'; '.join(found.errors)}")
    try:
        return AuditKey(secret=read_or_create_key(path).encode(), source="file", path=path)
    except (OSError, KeyFileError) as exc:
        raise AuditKeyUnavailable(f"{AUDIT_KEY_NAME} is not set and {path} is unusable: {exc}") from exc


# --- Canonical values ------------------------------------------------------------------------


def normalise_text(value: object, max_length: int | None = None) -> str:
    """Text as every database stores it: no NUL (PostgreSQL refuses it), valid UTF-8, cut to fit."""
    text = str(value).replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text[:max_length] if max_length is not None else text


def normalise_details(value: Any) -> Any:
    """A JSON value that every database returns exactly as given (a fixed point).

    Integral floats become integers (PostgreSQL's jsonb returns 1e20 as an integer), integers
    beyond 64 bits and non-finite floats become strings, Decimal/UUID/dates become strings as
    Django's JSON encoder writes them, tuples become lists and keys become strings. Other
    types are a caller bug and raise TypeError, as JSONField would.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -_INT_LIMIT <= value <= _INT_LIMIT else str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        return normalise_details(int(value)) if value.is_integer() else value
    if isinstance(value, str):
        return normalise_text(value)
    if isinstance(value, Mapping):
        return {normalise_text(k): normalise_details(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalise_details(v) for v in value]
    return _normalise_other(value)


def _normalise_other(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return canonical_timestamp(value) if value.tzinfo else value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    raise TypeError(f"audit details cannot hold {type(value).__name__} values")


def canonical_timestamp(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


# --- MACs ------------------------------------------------------------------------------------


def entry_message(fields: Mapping[str, Any], prev_mac: str) -> bytes:
    """The exact bytes an entry's MAC covers (documented in the module docstring)."""
    document: dict[str, Any] = {name: fields[name] for name in ENTRY_FIELDS}
    document["timestamp"] = canonical_timestamp(fields["timestamp"])
    document["details"] = normalise_details(fields["details"])
    document.update({"kind": "audit-entry", "v": CHAIN_VERSION, "prev_mac": prev_mac})
    return canonical_json(document)


def entry_mac(key: AuditKey, fields: Mapping[str, Any], prev_mac: str) -> str:
    # One-shot hmac.digest: OpenSSL's fast path, no HMAC object per entry (verification
    # computes a million of these).
    return hmac.digest(key.secret, entry_message(fields, prev_mac), "sha256").hex()


def macs_equal(stored: str, expected: str) -> bool:
    """Constant-time comparison that also copes with tampered, non-ASCII stored values."""
    return hmac.compare_digest(stored.encode("utf-8", "replace"), expected.encode())


@dataclass(frozen=True)
class HeadState:
    """The signed checkpoint: where the chain ends, where verification starts, which key."""

    last_sequence: int = 0
    last_mac: str = ""
    # Entries up to anchor_sequence are not verified (written before the chain existed,
    # pruned, or before a re-anchor); the entry after it chains to anchor_mac.
    anchor_sequence: int = 0
    anchor_mac: str = ""
    # Entries up to here were removed by retention; total = last_sequence - pruned_through.
    pruned_through: int = 0
    key_id: str = ""
    mac: str = ""

    @property
    def is_genesis(self) -> bool:
        """A head that has never been signed and covers nothing: the start of a new chain."""
        return not self.mac and not self.key_id and self.last_sequence == 0 and self.anchor_sequence == 0

    def signed_fields(self) -> dict[str, Any]:
        return {
            "last_sequence": self.last_sequence,
            "last_mac": self.last_mac,
            "anchor_sequence": self.anchor_sequence,
            "anchor_mac": self.anchor_mac,
            "pruned_through": self.pruned_through,
            "key_id": self.key_id,
        }

    def expected_mac(self, key: AuditKey) -> str:
        document = {**self.signed_fields(), "kind": "audit-head", "v": CHAIN_VERSION}
        return hmac.new(key.secret, canonical_json(document), hashlib.sha256).hexdigest()

    def verifies(self, key: AuditKey) -> bool:
        return macs_equal(self.mac, self.expected_mac(key))

    def as_dict(self) -> dict[str, Any]:
        return {**self.signed_fields(), "mac": self.mac}


HEAD_FIELDS = tuple(HeadState.__dataclass_fields__)
