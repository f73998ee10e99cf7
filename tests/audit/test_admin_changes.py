"""Every state change made through the admin writes an audit entry (review finding 18).

The defect: closing a circuit breaker from the admin wrote no entry; neither did creating a
user, making someone staff or superuser, giving permissions or groups, setting a password or
renaming an API key.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib import admin
from django.contrib.auth.models import AbstractUser, Group, Permission, User
from django.db import models
from django.test import Client, RequestFactory
from django.utils import timezone

from audit.admin_changes import AuditedAdminMixin
from audit.models import AuditEntry
from cloudops.apikeys import api_key_create
from cloudops.metrics.services import metrics_config_get
from governance.models import ApprovalRequest, ApprovalRule, Quota
from notifications.models import Channel, Delivery
from providers.config import provider_config_get
from providers.models import CircuitBreaker, CircuitState, Job, JobStatus
from tests.audit import tamper
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def entries_since(sequence: int) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(sequence__gt=sequence).exclude(event_type__startswith="auth."))


def last_sequence() -> int:
    return AuditEntry.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0


# --- Every registered ModelAdmin and every action ------------------------------------------------

# A fresh object each action can act on, per registered model. A new ModelAdmin with actions
# fails test_every_admin_action_writes_an_audit_entry until it has one here.
FRESH: dict[str, Callable[[], models.Model]] = {
    "auth.user": lambda: User.objects.create_user("victim", password=PASSWORD),
    "auth.group": lambda: Group.objects.create(name="contractors"),
    "cloudops.apikey": lambda: api_key_create(owner=User.objects.get(username="alice"), name="laptop")[0],
    "providers.job": lambda: Job.objects.create(
        owner=User.objects.get(username="alice"), provider="local", status=JobStatus.QUEUED
    ),
    "providers.circuitbreaker": lambda: CircuitBreaker.objects.create(
        provider="replicate", state=CircuitState.OPEN, opened_at=timezone.now(), consecutive_failures=5
    ),
    "governance.approvalrule": lambda: an_approval_rule(),
    "governance.approvalrequest": lambda: a_held_request(),
    "governance.quota": lambda: Quota.objects.create(scope="global", quota_type="jobs_per_day", limit=10),
    "notifications.channel": lambda: a_channel(),
    "notifications.delivery": lambda: Delivery.objects.create(
        channel=a_channel(), event_type="test", msg_id=f"msg_{Delivery.objects.count()}", payload={}, status="failed"
    ),
}


def a_channel() -> Channel:
    """A webhook channel (its actions: a test event, a rotation) pointing nowhere it is sent."""
    return Channel.objects.create(
        name="hook",
        channel_type="webhook",
        events=["job.failed"],
        url="https://hooks.example.com/x",
        secret="whsec_eA==",
    )


def an_approval_rule() -> ApprovalRule:
    """One rule, by name: a request's rule outlives the request the loop deletes."""
    fields = {"condition": "hardware_type", "threshold": "gpu-a100*", "required_approver_level": "lead"}
    return ApprovalRule.objects.get_or_create(name="a100s", defaults=fields)[0]


def a_held_request() -> ApprovalRequest:
    """Alice's job held by a rule (olivia decides: an admin who is not the submitter). Its
    provider is `replicate`, unconfigured here, so an approval fails the job at submission
    instead of starting a process."""
    job = Job.objects.create(
        owner=User.objects.get(username="alice"), provider="replicate", status=JobStatus.PENDING_APPROVAL
    )
    rule = an_approval_rule()
    expires = timezone.now() + timezone.timedelta(hours=1)
    return ApprovalRequest.objects.create(
        job=job, rule=rule, rule_name=rule.name, required_level="lead", reason="a100s", expires_at=expires
    )


def test_every_registered_admin_audits_what_it_saves() -> None:
    for model, model_admin in admin.site._registry.items():
        assert isinstance(model_admin, AuditedAdminMixin), model._meta.label


def test_every_admin_action_writes_an_audit_entry(
    admin_client: Client, olivia: AbstractUser, alice: AbstractUser
) -> None:
    request = RequestFactory().get("/admin/")
    request.user = olivia
    unaudited, ran = [], 0
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label_lower
        for action in model_admin.get_actions(request):
            assert label in FRESH, f"{label} has the action {action!r}: add a FRESH object for it"
            obj = FRESH[label]()
            before = last_sequence()
            data = {"action": action, "_selected_action": [obj.pk], "post": "yes"}
            response = admin_client.post(f"/admin/{model._meta.app_label}/{model._meta.model_name}/", data)
            assert response.status_code == 302, (label, action)
            ran += 1
            if not [e for e in entries_since(before) if e.actor_username == "olivia"]:
                unaudited.append(f"{label}: {action}")
            if model.objects.filter(pk=obj.pk).exists():
                model.objects.filter(pk=obj.pk).delete()  # FRESH objects have fixed names
    assert not unaudited
    assert ran >= 5  # users, groups, API keys, jobs and circuits have actions


# --- Users and groups (Django's own admins) -------------------------------------------------------


def test_creating_a_user_is_audited(admin_client: Client) -> None:
    data = {"username": "newbie", "password1": "a long passphrase 42", "password2": "a long passphrase 42"}
    data["usable_password"] = "true"
    assert admin_client.post("/admin/auth/user/add/", data).status_code == 302
    user = User.objects.get(username="newbie")
    entry = AuditEntry.objects.get(event_type="admin.added")
    assert (entry.target_type, entry.target_id, entry.action) == ("auth.user", str(user.pk), "add")
    assert entry.details["values"]["is_staff"] is False
    assert entry.details["values"]["password"] == "(changed)"
    assert user.password not in str(entry.details)


def user_form(user: User, **changes: object) -> dict[str, object]:
    """The user change form as a browser posts it, with `changes`."""
    joined = [timezone.localtime(user.date_joined).strftime(f) for f in ("%Y-%m-%d", "%H:%M:%S")]
    data: dict[str, object] = {
        "username": user.username,
        "first_name": "",
        "last_name": "",
        "email": "",
        "is_active": "on",
        # date_joined has a callable default, so the form also posts its initial value.
        "date_joined_0": joined[0],
        "date_joined_1": joined[1],
        "initial-date_joined_0": joined[0],
        "initial-date_joined_1": joined[1],
        "last_login_0": "",
        "last_login_1": "",
    }
    data.update(changes)
    return data


def test_granting_staff_superuser_groups_and_permissions_is_audited_with_the_values(
    admin_client: Client, alice: AbstractUser
) -> None:
    ops = Group.objects.create(name="ops")
    perm = Permission.objects.get(content_type__app_label="audit", codename="view_auditentry")
    data = user_form(alice, is_staff="on", is_superuser="on", groups=[ops.pk], user_permissions=[perm.pk])
    response = admin_client.post(f"/admin/auth/user/{alice.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    entry = AuditEntry.objects.get(event_type="admin.changed")
    assert (entry.target_type, entry.target_id, entry.actor_username) == ("auth.user", str(alice.pk), "olivia")
    assert entry.details["values"] == {
        "is_staff": True,
        "is_superuser": True,
        "groups": ["ops"],
        "user_permissions": ["audit.view_auditentry"],
    }
    assert entry.details["message"] == [
        {"changed": {"fields": ["Staff status", "Superuser status", "Groups", "User permissions"]}}
    ]


def test_setting_a_password_is_audited_without_the_password(admin_client: Client, alice: AbstractUser) -> None:
    data = {"password1": "a brand new passphrase", "password2": "a brand new passphrase", "usable_password": "true"}
    response = admin_client.post(f"/admin/auth/user/{alice.pk}/password/", data)
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("a brand new passphrase")
    entry = AuditEntry.objects.get(event_type="admin.changed")
    assert entry.details["values"] == {"password": "(changed)"}
    assert "brand new" not in str(entry.details) and alice.password not in str(entry.details)


def test_a_password_set_the_audit_trail_refuses_is_rolled_back(alice: AbstractUser, olivia: AbstractUser) -> None:
    client = Client(raise_request_exception=False)
    client.force_login(olivia)
    tamper.edit_head(mac="0" * 64)
    data = {"password1": "a brand new passphrase", "password2": "a brand new passphrase", "usable_password": "true"}
    assert client.post(f"/admin/auth/user/{alice.pk}/password/", data).status_code == 503
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def test_a_change_the_audit_trail_refuses_is_rolled_back(alice: AbstractUser, olivia: AbstractUser) -> None:
    client = Client(raise_request_exception=False)
    client.force_login(olivia)
    tamper.edit_head(mac="0" * 64)
    assert client.post(f"/admin/auth/user/{alice.pk}/change/", user_form(alice, is_staff="on")).status_code == 503
    alice.refresh_from_db()
    assert not alice.is_staff


def test_deleting_a_user_is_audited(admin_client: Client, alice: AbstractUser) -> None:
    assert admin_client.post(f"/admin/auth/user/{alice.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not User.objects.filter(pk=alice.pk).exists()
    entry = AuditEntry.objects.get(event_type="admin.deleted")
    assert (entry.target_id, entry.details) == (str(alice.pk), {"object": "alice"})


def test_creating_a_group_records_its_permissions(admin_client: Client) -> None:
    perm = Permission.objects.get(content_type__app_label="providers", codename="view_job")
    assert admin_client.post("/admin/auth/group/add/", {"name": "viewers", "permissions": [perm.pk]}).status_code == 302
    entry = AuditEntry.objects.get(event_type="admin.added")
    assert entry.target_type == "auth.group"
    assert entry.details["values"]["permissions"] == ["providers.view_job"]


# --- Our admins: audited once, by their services ------------------------------------------------


def test_renaming_an_api_key_is_audited_once(admin_client: Client, alice: AbstractUser) -> None:
    api_key, _ = api_key_create(owner=alice, name="laptop")
    before = last_sequence()
    response = admin_client.post(f"/admin/cloudops/apikey/{api_key.pk}/change/", {"name": "old laptop"})
    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.name == "old laptop"
    [entry] = entries_since(before)
    assert (entry.event_type, entry.target_id) == ("api_key.renamed", api_key.prefix)
    assert entry.details == {"name": "old laptop", "previous_name": "laptop", "owner": "alice"}


def test_creating_an_api_key_in_the_admin_is_audited_once(admin_client: Client, alice: AbstractUser) -> None:
    before = last_sequence()
    assert admin_client.post("/admin/cloudops/apikey/add/", {"owner": alice.pk, "name": "ci"}).status_code == 302
    assert [e.event_type for e in entries_since(before)] == ["api_key.created"]


def test_the_metrics_configuration_is_audited_once(admin_client: Client) -> None:
    config = metrics_config_get()
    before = last_sequence()
    data = {"prometheus_enabled": "on", "prometheus_categories": ["jobs"], "apply_template": ""}
    assert admin_client.post(f"/admin/metrics/metricsconfig/{config.pk}/change/", data).status_code == 302
    assert [e.event_type for e in entries_since(before)] == ["config.changed"]


def test_a_provider_change_is_audited_once(admin_client: Client) -> None:
    from tests.providers.test_admin import change_url, form_data

    config = provider_config_get("replicate")
    before = last_sequence()
    assert admin_client.post(change_url(config), form_data(config, http_timeout="45")).status_code == 302
    assert [e.event_type for e in entries_since(before)] == ["provider.configured"]


def test_saving_a_form_that_changes_nothing_writes_nothing(admin_client: Client, alice: AbstractUser) -> None:
    job = FRESH["providers.job"]()
    before = last_sequence()
    # The job page is read-only (no Save button): a post is refused and writes nothing.
    assert admin_client.post(f"/admin/providers/job/{job.pk}/change/", {}).status_code == 403
    assert admin_client.post(f"/admin/auth/user/{alice.pk}/change/", user_form(alice)).status_code == 302
    assert entries_since(before) == []
