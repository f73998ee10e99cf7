from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from audit.chain import AuditKeyUnavailable
from audit.models import AuditEntry
from audit.selectors import head_state, head_summary, latest_verification
from audit.verification import AuditRangeError, VerifyResult, audit_verify
from cloudops.admin_lists import CappedCountPaginator, IndexedValuesFilter, timestamp_column

# Target types whose id is the object's primary key on a page of this admin: the services'
# "job", and the "app.model" labels of admin changes (audit.admin_changes). Other targets
# ("provider" by name, "api_key" by prefix, "user" by username or id) have no such page.
TARGET_PAGES = {"job": "admin:providers_job_change"}


def target_page(entry: AuditEntry) -> str | None:
    """The admin page of the entry's target, if it has one."""
    name = TARGET_PAGES.get(entry.target_type)
    if name is None and entry.target_type.count(".") == 1:
        name = "admin:{}_{}_change".format(*entry.target_type.split("."))
    if name is None or not entry.target_id:
        return None
    try:
        return reverse(name, args=[entry.target_id])
    except NoReverseMatch:
        return None


class VerifyForm(forms.Form):
    from_sequence = forms.IntegerField(required=False, min_value=1, help_text="empty: the first retained entry")
    to_sequence = forms.IntegerField(required=False, min_value=1, help_text="empty: the last entry")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        low, high = data.get("from_sequence"), data.get("to_sequence")
        if low is not None and high is not None and high < low:
            self.add_error("to_sequence", "Must not be lower than from_sequence.")
        return data


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: the audit trail is append-only, in the admin as everywhere else.

    The changelist shows the latest chain verification and links to a page that runs one.
    Its cost does not grow with the trail (cloudops.admin_lists): a capped count, filter
    values by index seeks, the timestamp filter instead of a date hierarchy.
    """

    change_list_template = "admin/audit/auditentry/change_list.html"
    list_display = [
        "sequence",
        "timestamp_display",
        "event_type",
        "actor_username",
        "actor_api_key",
        "actor_ip",
        "target_type",
        "target_link",
    ]
    list_filter = [("event_type", IndexedValuesFilter), ("target_type", IndexedValuesFilter), "timestamp"]
    search_fields = ["actor_username", "actor_api_key", "actor_ip", "target_id"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    ordering = ["-sequence"]
    # Every field, the timestamp to the second and the target with a link to its page.
    readonly_fields = [
        {"timestamp": "timestamp_display", "target_id": "target_link"}.get(f.name, f.name)
        for f in AuditEntry._meta.fields
    ]
    fields = list(readonly_fields)

    timestamp_display = timestamp_column("timestamp", "Timestamp")

    @admin.display(description="Target ID", ordering="target_id")
    def target_link(self, entry: AuditEntry) -> SafeString | str:
        url = target_page(entry)
        if url is None:
            return entry.target_id or "-"
        return format_html('<a class="audit-target" href="{}">{}</a>', url, entry.target_id)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        verify = path("verify/", self.admin_site.admin_view(self.verify_view), name="audit_auditentry_verify")
        # First, so "verify/" is not read as an object id.
        return [verify, *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return super().changelist_view(request, {**(extra_context or {}), **_chain_context()})

    def verify_view(self, request: HttpRequest) -> HttpResponse:
        """GET shows the latest result; POST verifies now (the whole chain, or a range)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = VerifyForm(request.POST if request.method == "POST" else None)
        result: VerifyResult | None = None
        key_error = None
        if request.method == "POST" and form.is_valid():
            try:
                result = audit_verify(**form.cleaned_data, trigger="admin")
            except AuditRangeError as exc:
                form.add_error(exc.parameter, str(exc))
            except AuditKeyUnavailable as exc:
                key_error = str(exc)
        context = {
            **self.admin_site.each_context(request),
            **_chain_context(),
            "opts": self.model._meta,
            "title": "Verify the audit chain",
            "form": form,
            "result": result,
            "key_error": key_error,
        }
        return TemplateResponse(request, "admin/audit/auditentry/verify.html", context)


def _chain_context() -> dict[str, Any]:
    return {"last_verification": latest_verification(), "chain_head": head_summary(head_state())}
