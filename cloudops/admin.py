from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from cloudops.apikeys import api_key_create, api_key_revoke
from cloudops.models import ApiKey

admin.site.site_header = "cloudops administration"
admin.site.site_title = "cloudops"
admin.site.index_title = "SimpleTuner cloud operations"


class ApiKeyCreateForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["owner", "name"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Create shows the full key once (as a message); the list never shows secrets."""

    list_display = ["name", "prefix", "owner", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at", "owner"]
    search_fields = ["name", "prefix", "owner__username"]
    actions = ["revoke_selected"]

    def get_form(self, request: HttpRequest, obj: ApiKey | None = None, **kwargs: Any) -> type[forms.ModelForm]:
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[str]:
        if obj is None:
            return ["owner", "name"]
        return ["name", "prefix", "owner", "created_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[str]:
        if obj is None:
            return []
        return ["prefix", "owner", "created_at", "last_used_at", "revoked_at"]

    def save_model(self, request: HttpRequest, obj: ApiKey, form: forms.ModelForm, change: bool) -> None:
        if change:
            obj.save(update_fields=["name"])
            return
        created, raw_key = api_key_create(owner=obj.owner, name=obj.name, request=request)
        obj.pk = created.pk
        obj.prefix = created.prefix
        messages.warning(request, f"New API key (shown only once, store it now): {raw_key}")

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        # Keys are revoked, not deleted, so the audit trail can still name them.
        return False

    @admin.action(description="Revoke selected API keys")
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key=api_key, request=request)
        self.message_user(request, "Selected keys revoked.")
