"""Secrets the server must keep and use again, sealed in the database under the server key.

Most credentials are derived from the server key and never stored (cloudops.keys). A few must
be kept as given: a notification channel's signing secret and a Slack webhook URL (a token in
its path). A `SealedField` holds them sealed: Fernet (AES-128-CBC and HMAC-SHA256, from the
`cryptography` package) under a key derived from the server key for the field's purpose, so the
database, or a backup of it, does not reveal them. In memory the model's attribute is the
plain value; lookups by the value are not possible (each sealing is different).

Changing the server key makes sealed values unreadable, as it invalidates every derived
credential. Such a value loads as `Unreadable` (an empty string that keeps what was stored,
so saving the row does not destroy it); the code that needs the value says what to do (rotate
the channel's secret, enter the Slack URL again). Rows written before sealing existed hold the
plain value without the `sealed:v1:` prefix and read as they are.
"""

from __future__ import annotations

import base64
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django import forms
from django.core import validators
from django.db import models

from cloudops.keys import derive, server_key

PREFIX = "sealed:v1:"


class Unreadable(str):
    """A sealed value the current server key cannot open: "" in use, `stored` kept as it was."""

    stored: str

    def __new__(cls, stored: str) -> Unreadable:
        value = super().__new__(cls, "")
        value.stored = stored
        return value


@lru_cache(maxsize=8)
def _fernet(purpose: str, key: bytes) -> Fernet:
    # Cached by the server key too, so a changed key (secrets chain) takes effect at once.
    return Fernet(base64.urlsafe_b64encode(derive(f"sealed:{purpose}", key=key)))


def seal(purpose: str, value: str) -> str:
    """`value` sealed for `purpose`; "" stays "" (blank means none)."""
    if not value:
        return value
    return PREFIX + _fernet(purpose, server_key()).encrypt(value.encode()).decode()


def unseal(purpose: str, stored: str) -> str:
    """The plain value; `Unreadable` if it was sealed under another server key (or mangled)."""
    if not stored.startswith(PREFIX):
        return stored  # blank, or written before sealing
    try:
        return _fernet(purpose, server_key()).decrypt(stored.removeprefix(PREFIX).encode()).decode()
    except (InvalidToken, UnicodeDecodeError):
        return Unreadable(stored)


class SealedField(models.TextField):  # type: ignore[type-arg]
    """A text column whose value is sealed (see the module). `max_length` bounds the plain value
    (forms and model validation check it); the column itself is unbounded text, as a sealed
    value is about a third longer than its plain value plus 67 characters."""

    def __init__(self, *args: Any, purpose: str, **kwargs: Any) -> None:
        self.purpose = purpose
        super().__init__(*args, **kwargs)
        if self.max_length is not None:
            self.validators.append(validators.MaxLengthValidator(self.max_length))

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        kwargs["purpose"] = self.purpose
        return name, path, args, kwargs

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        return None if value is None else unseal(self.purpose, value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if isinstance(value, Unreadable):
            return value.stored
        return value if value is None else seal(self.purpose, value)

    def formfield(
        self,
        form_class: type[forms.Field] | None = None,
        choices_form_class: type[forms.ChoiceField] | None = None,
        **kwargs: Any,
    ) -> forms.Field | None:
        # One line, as the CharField it replaces (TextField's form field is a textarea).
        kwargs.setdefault("widget", forms.TextInput)
        return super().formfield(form_class=form_class, choices_form_class=choices_form_class, **kwargs)
