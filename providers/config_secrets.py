"""Which keys of a job config name a credential.

A job config is stored, shown by the API and sent to providers, so a credential put in it
leaks; credentials belong in the secrets chain (e.g. HF_TOKEN). A key is read the way a
person reads it before it is matched:

1. NFKC (fullwidth and mathematical letters become plain ones), invisible format characters
   and combining marks removed (`to\\u200bken` is `token`);
2. every non-ASCII letter that looks like an ASCII one folded to it, by Unicode's
   confusables table (`hf_tоken` with a Cyrillic о is `hf_token`);
3. lower case, split into words at separators and camelCase humps, and letters still
   ambiguous in lower case made one (`l`, `1`, `i`; `o`, `0`).

It names a credential when its letters and digits, run together, contain a word only
credentials use (`s3_secretkey`, `pass_word`, `apiKey`), or one of its words is a credential
word on its own (`hf_token`, `pwd`, `bearer`) or ends in `token` (`authtoken`). Plain words
that merely contain one (`tokenizer`, `max_tokens`, `bypass`) are not credentials.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from typing import Any

# Run together, these spell nothing but a credential.
CREDENTIAL_SPELLINGS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "credential",
    "apikey",
    "accesskey",
    "privatekey",
    "authkey",
    "sshkey",
    "signingkey",
    "encryptionkey",
)
# Credentials only as a whole word (inside longer words they mean other things).
CREDENTIAL_WORDS = frozenset({"token", "pwd", "bearer", "authorization"})
_HUMP = re.compile(r"([a-z0-9])([A-Z])")
_SEPARATORS = re.compile(r"[^a-z0-9]+")


@cache
def _confusables() -> dict[str, list[dict[str, str]]]:
    # Imported on first use: the table is a 900 KB JSON file.
    from confusable_homoglyphs.confusables import confusables_data

    return confusables_data


def _ascii_lookalike(char: str) -> str:
    for glyph in _confusables().get(char, ()):
        candidate = glyph.get("c", "")
        if len(candidate) == 1 and candidate.isascii() and candidate.isalnum():
            return candidate
    return char


def readable_form(key: str) -> str:
    """The key as a reader sees it: steps 1 and 2 of the module docstring (case kept)."""
    if key.isascii():
        return key  # nothing to normalise or fold (the usual case)
    text = unicodedata.normalize("NFKC", key)
    text = "".join(c for c in text if unicodedata.category(c) not in ("Cf", "Mn", "Me"))
    return "".join(c if c.isascii() else _ascii_lookalike(c) for c in text)


def key_words(key: str, *, humps: bool = True) -> list[str]:
    """The key's words in skeleton form (step 3), split at separators (and camelCase humps
    if `humps`)."""
    text = readable_form(key)
    if humps:
        text = _HUMP.sub(r"\1_\2", text)
    return [_skeleton(word) for word in _SEPARATORS.split(text.lower()) if word]


def _skeleton(word: str) -> str:
    # Letters that stay ambiguous in lower case (`l`, `1` and capital `I` lowered to `i`;
    # `o` and `0`) share one form, on both sides of every comparison.
    return word.translate(_AMBIGUOUS)


_AMBIGUOUS = str.maketrans("i10", "llo")
_SPELLINGS = tuple(_skeleton(spelling) for spelling in CREDENTIAL_SPELLINGS)
_WORDS = frozenset(_skeleton(word) for word in CREDENTIAL_WORDS)
_TOKEN = _skeleton("token")


def names_credential(key: str) -> bool:
    # Both splittings: `hfToken` needs the humps, `tokeN` (odd case) must not be cut by them.
    plain, humped = key_words(key, humps=False), key_words(key)
    if any(spelling in "".join(plain) for spelling in _SPELLINGS):
        return True
    return any(word in _WORDS or word.endswith(_TOKEN) for word in plain + humped)


def credential_keys(value: Any, path: str = "") -> list[str]:
    """Dotted paths of every key in `value` (nested dicts and lists) that names a credential."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if names_credential(str(key)):
                found.append(f"{path}{key}")
            found += credential_keys(item, f"{path}{key}.")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += credential_keys(item, f"{path}{index}.")
    return found
