"""A confirmation page before an admin action that cannot be undone (cancel, revoke), the
per-row loop of an action that calls a service on each selected row, and change pages that
only show.

Like Django's "delete selected": the action first answers with templates/admin/confirm_action.html,
whose "Yes" posts the same action again with post=yes; only then does it run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from rest_framework.exceptions import APIException

Row = TypeVar("Row")


def confirmed(request: HttpRequest) -> bool:
    return request.POST.get("post") == "yes"


def confirm_page(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    *,
    title: str,
    question: str,
    objects: Iterable[Any],
    confirm_label: str,
    hidden: list[tuple[str, str]],
    form_action: str = "",
    nothing_to_do: str = "",
    reason_label: str = "",
) -> TemplateResponse:
    """With `reason_label`, the page also asks for a reason (posted as `reason`)."""
    opts = model_admin.model._meta
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": opts,
        "title": title,
        "question": question,
        "objects": [str(obj) for obj in objects],
        "confirm_label": confirm_label,
        "hidden": hidden,
        "form_action": form_action,
        "nothing_to_do": nothing_to_do,
        "reason_label": reason_label,
        "changelist_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
    }
    return TemplateResponse(request, "admin/confirm_action.html", context)


def action_hidden(action: str, pks: Iterable[Any]) -> list[tuple[str, str]]:
    """The fields that post the changelist action `action` again for these rows."""
    return [("action", action), *((helpers.ACTION_CHECKBOX_NAME, str(pk)) for pk in pks)]


def act_on_each(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    rows: Iterable[Row],
    act: Callable[[Row], object],
    *,
    done: str,
    label: Callable[[Row], str] = str,
) -> int:
    """Call `act` (a service, as the API calls it) on each row. A row the service refuses
    (an APIException: a conflict, a permission) is a warning naming it (`label(row)`) and
    does not stop the others; the rows done are counted in one line, `"<n> <done>."`."""
    count = 0
    for row in rows:
        try:
            act(row)
        except APIException as exc:
            model_admin.message_user(request, f"{label(row)}: {exc.detail}", messages.WARNING)
            continue
        count += 1
    if count:
        model_admin.message_user(request, f"{count} {done}.", messages.SUCCESS)
    return count


class ReadOnlyPageMixin:
    """For a ModelAdmin whose change page only shows (its changes are actions: cancel, reset):
    no Save buttons, and a post to the page is refused rather than "saved" unchanged."""

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "POST":
            raise PermissionDenied
        read_only = {"show_save": False, "show_save_and_continue": False, "show_save_and_add_another": False}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **read_only})  # type: ignore[misc]
