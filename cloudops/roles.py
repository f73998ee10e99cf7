"""Users' roles, as the library sees them: it asks the module named by settings.ROLE_POLICY
(governance.roles, which owns the rule and documents it) without importing the app. No DRF
import here: the API key lookup (cloudops.apikeys) uses it while DRF is loading.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from types import ModuleType
from typing import Any

from django.conf import settings


@cache
def _role_policy() -> ModuleType:
    """The module that knows users' roles (settings.ROLE_POLICY, governance.roles): the
    library asks it without importing the app."""
    return import_module(settings.ROLE_POLICY)


def user_role(user: Any) -> str:
    """The user's role name (viewer, researcher, lead or admin)."""
    return str(_role_policy().role_name(user))


def role_sees_all_jobs(user: Any) -> bool:
    """Whether the user's role group lets them read every user's jobs (leads and admins)."""
    return bool(_role_policy().grants_all_jobs(user))


def action_refusal(user: Any, action: str) -> str | None:
    """Why the user's role may not do `action` (a message naming the role), or None."""
    refusal = _role_policy().action_refusal(user, action)
    return str(refusal) if refusal else None


def user_annotations(user_path: str) -> dict[str, Any]:
    """Columns the role policy loads with a user in the same query (see apikeys.api_key_find)."""
    return dict(_role_policy().user_annotations(user_path))


def remember_annotations(user: Any, values: dict[str, Any]) -> None:
    for name, value in values.items():
        _role_policy().remember(user, name, value)
