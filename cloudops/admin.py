from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import admin as auth_admin
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse

from cloudops.admin_confirm import action_hidden, confirm_page, confirmed
from cloudops.apikeys import api_key_create, api_key_rename, api_key_revoke
from cloudops.models import ApiKey


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
    audited_by_service = frozenset({"add", "change"})  # api_key_create, api_key_rename

    def get_form(
        self, request: HttpRequest, obj: ApiKey | None = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm]:
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("owner", "name")
        return ("name", "prefix", "owner", "created_at", "last_used_at", "revoked_at")

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[str]:
        if obj is None:
            return []
        return ["prefix", "owner", "created_at", "last_used_at", "revoked_at"]

    def save_model(self, request: HttpRequest, obj: ApiKey, form: forms.ModelForm, change: bool) -> None:
        if change:
            api_key_rename(api_key=obj, name=obj.name, request=request)
            return
        created, raw_key = api_key_create(owner=obj.owner, name=obj.name, request=request)
        obj.pk = created.pk
        obj.prefix = created.prefix
        messages.warning(request, f"New API key (shown only once, store it now): {raw_key}")

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        # Keys are revoked, not deleted, so the audit trail can still name them.
        return False

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> HttpResponse | None:
        active = list(queryset.filter(revoked_at__isnull=True).select_related("owner"))
        if not confirmed(request):
            return confirm_page(
                self,
                request,
                title="Revoke API keys",
                question=f"Revoke these {len(active)} API key(s)? Clients using them are refused from now on; "
                "a revoked key cannot be restored.",
                objects=[f"{key.name} ({key.prefix}…, {key.owner})" for key in active],
                confirm_label="Yes, revoke them",
                hidden=action_hidden("revoke_selected", (key.pk for key in active)),
                nothing_to_do="The selected keys are revoked already: there is nothing to revoke.",
            )
        for api_key in active:
            api_key_revoke(api_key=api_key, request=request)
        self.message_user(request, f"{len(active)} API key(s) are now revoked.", level=messages.SUCCESS)
        return None


# Django's user admin, with its set-password form in one transaction with its audit entry
# (Django runs the change and delete forms in one, not this one).
admin.site.unregister(User)


@admin.register(User)
class UserAdmin(auth_admin.UserAdmin):
    """Django's user admin. Accounts are deactivated rather than deleted: audit entries name
    users and jobs belong to them (PROTECT). The delete pages say so and offer "Deactivate
    instead" (templates/admin/auth/user/), which runs `deactivate_users`."""

    # Recorded by Django, not edited: as split date/time fields they would also lose their
    # microseconds on every save of the page.
    readonly_fields = ["last_login", "date_joined"]
    actions = ["deactivate_selected"]

    def get_urls(self) -> list[URLPattern]:
        deactivate = self.admin_site.admin_view(self.deactivate_view)
        return [path("<id>/deactivate/", deactivate, name="auth_user_deactivate"), *super().get_urls()]

    def deactivate_view(self, request: HttpRequest, id: str) -> HttpResponse:
        """POST from the delete page's "Deactivate instead" button."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not id.isdigit():
            raise Http404("No such user.")
        user = get_object_or_404(User, pk=id)
        if not self.has_change_permission(request, user):
            raise PermissionDenied
        self.deactivate_users(request, [user])
        return HttpResponseRedirect(reverse("admin:auth_user_change", args=[user.pk]))

    @admin.action(description="Deactivate selected users (instead of deleting them)", permissions=["change"])
    def deactivate_selected(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self.deactivate_users(request, list(queryset))

    def deactivate_users(self, request: HttpRequest, users: list[User]) -> None:
        """Each active user but the one asking: is_active off, in one transaction with its
        LogEntry and audit entry (log_change: `admin.changed`, `is_active: false`). Django then
        refuses the account's logins and sessions, and cloudops its API keys."""
        done = []
        for user in users:
            if user.pk == request.user.pk:
                self.message_user(request, "You cannot deactivate your own account.", level=messages.WARNING)
                continue
            if not user.is_active:
                continue
            with transaction.atomic():
                user.is_active = False
                user.save(update_fields=["is_active"])
                self.log_change(request, user, [{"changed": {"fields": ["Active"]}}])
            done.append(user.get_username())
        if done:
            self.message_user(request, f"Now inactive: {', '.join(done)}.", level=messages.SUCCESS)
        elif len(users) > sum(user.pk == request.user.pk for user in users):
            self.message_user(request, "The selected users are inactive already.", level=messages.INFO)

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        with transaction.atomic():
            return super().user_change_password(request, id, form_url)
