"""Every admin change form shows what is stored: saved unchanged, it changes nothing.

For each registered ModelAdmin, a populated object's change page is loaded, the form is read
from the HTML as a browser would submit it (the rendered selected option, the ticked boxes,
the text areas' text), posted back unchanged, and the stored row must be the same. A field
rendered without its stored value (the SSL-verification select once always showed
"Inherit") fails here. Pages without a save button (read-only) must still load.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import AbstractUser, Group, Permission, User
from django.db import models
from django.forms.models import model_to_dict
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEntry
from audit.services import audit_record
from cloudops.apikeys import api_key_create
from cloudops.metrics.models import MetricsConfig
from cloudops.metrics.services import metrics_config_get, metrics_config_update
from cloudops.models import ApiKey
from cloudops.ratelimit.models import RateLimitBucket
from governance.models import ApprovalRequest, ApprovalRule, Quota
from notifications.models import Channel, Delivery, DeliveryStatus
from providers.config import provider_config_get, provider_config_update
from providers.models import CircuitBreaker, CircuitState, Job, JobStatus, ProviderConfig
from tests.fakes.http import self_signed_tls

pytestmark = pytest.mark.django_db


class ChangeFormParser(HTMLParser):
    """The fields of the admin change form (`<form id="..._form">`) as the browser posts them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.data: list[tuple[str, str]] = []
        self.buttons: list[str] = []
        self._in_form = False
        self._select: str | None = None
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("id", "").endswith("_form"):
            self._in_form = True
        if not self._in_form or "disabled" in a:
            return
        if tag == "input":
            self._input(a)
        elif tag == "select":
            self._select = a.get("name")
        elif tag == "option" and self._select and "selected" in a:
            self.data.append((self._select, a.get("value", "")))
        elif tag == "textarea":
            self._textarea, self._text = a.get("name"), ""

    def _input(self, a: dict[str, str]) -> None:
        kind, name = a.get("type", "text"), a.get("name")
        if not name:
            return
        if kind == "submit":
            self.buttons.append(name)
        elif kind in ("checkbox", "radio"):
            if "checked" in a:
                self.data.append((name, a.get("value", "on")))
        elif kind not in ("button", "file", "reset", "image"):
            self.data.append((name, a.get("value", "")))

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            # The browser drops the one newline that follows <textarea>; Django writes it.
            self.data.append((self._textarea, self._text.removeprefix("\n")))
            self._textarea = None


def stored(obj: models.Model) -> dict[str, Any]:
    fresh = type(obj)._default_manager.get(pk=obj.pk)
    row = model_to_dict(fresh, fields=[f.name for f in fresh._meta.concrete_fields])
    for field in fresh._meta.many_to_many:
        row[field.name] = sorted(getattr(fresh, field.name).values_list("pk", flat=True))
    return row


# --- One populated object per registered model --------------------------------------------------


def a_provider(olivia: User, tmp_path: Path) -> ProviderConfig:
    bundle = self_signed_tls(tmp_path).ca_pem
    changes = {
        "display_name": "Replicate (prod)",
        "enabled": False,
        "webhook_allowed_ips": ["34.82.0.0/16", "2001:db8::/32"],
        "webhook_require_signature": False,
        "ssl_verify": False,
        "ssl_ca_bundle": str(bundle),
        "proxy_url": "http://user:s3cret@proxy.internal:3128",
        "http_timeout": 45.5,
        "s3_endpoint_enabled": False,
        "s3_public_url": "https://cloud.example.com/base",
        "s3_output_path": str(tmp_path / "outputs"),
        "cost_limit_enabled": True,
        "cost_limit_amount": Decimal("123.45"),
        "cost_limit_period": "weekly",
        "cost_limit_action": "block",
        "hardware": {"gpu-x": {"price_per_second": 0.002, "label": "1x X"}},
        "default_hardware": "gpu-x",
        "model": "simpletuner/advanced-trainer",
        "version_override": "abc123",
    }
    return provider_config_update(provider_config=provider_config_get("replicate"), changes=changes)


def a_job(olivia: User, tmp_path: Path) -> Job:
    now = timezone.now()
    return Job.objects.create(
        name="lora",
        owner=olivia,
        provider="replicate",
        external_id="ext-1",
        status=JobStatus.FAILED,
        hardware="gpu-l40s",
        config={"lr": 0.0001},
        dataloader_config=[{"id": "d"}],
        started_at=now,
        completed_at=now,
        run_seconds=12.5,
        cost_usd=Decimal("0.125000"),
        error="out of memory",
        logs="step 1\nstep 2\n",
        progress={"step": 2, "total": 10},
        output_url="https://example.com/out.tar",
    )


def a_circuit(olivia: User, tmp_path: Path) -> CircuitBreaker:
    return CircuitBreaker.objects.create(
        provider="replicate", state=CircuitState.OPEN, consecutive_failures=3, failures_total=9, last_error="502"
    )


def a_metrics_config(olivia: User, tmp_path: Path) -> MetricsConfig:
    metrics_config_update(prometheus_enabled=True, prometheus_categories=["jobs", "http"])
    return metrics_config_get()


def an_api_key(olivia: User, tmp_path: Path) -> ApiKey:
    return api_key_create(owner=olivia, name="ci")[0]


def a_user(olivia: User, tmp_path: Path) -> User:
    user = User.objects.create_user(
        "carol", email="carol@example.com", password="x-Y-z-123456", first_name="Carol", last_name="C", is_staff=True
    )
    user.date_joined = timezone.now()  # with microseconds, which a split date/time field would drop
    user.last_login = timezone.now()
    user.save()
    user.groups.add(a_group(olivia, tmp_path))
    user.user_permissions.add(Permission.objects.get(codename="view_job"))
    return user


def a_group(olivia: User, tmp_path: Path) -> Group:
    group, _ = Group.objects.get_or_create(name="operators")
    group.permissions.set(Permission.objects.filter(codename__in=["view_job", "change_job"]))
    return group


def an_audit_entry(olivia: User, tmp_path: Path) -> AuditEntry:
    audit_record(event_type="config.changed", target_type="metrics", target_id="1", details={"a": 1})
    return AuditEntry.objects.latest("sequence")


def a_rate_limit_bucket(olivia: User, tmp_path: Path) -> RateLimitBucket:
    return RateLimitBucket.objects.create(key="ip:10.0.0.1", hits="[1.0]", window=60.0, expires_at=61.0)


def an_approval_rule(olivia: User, tmp_path: Path) -> ApprovalRule:
    return ApprovalRule.objects.create(
        name="a100s",
        condition="hardware_type",
        threshold="gpu-a100*",
        applies_to_provider="replicate",
        required_approver_level="admin",
        exempt_levels=["lead", "admin"],
        priority=5,
    )


def an_approval_request(olivia: User, tmp_path: Path) -> ApprovalRequest:
    job = Job.objects.create(owner=olivia, provider="local", status=JobStatus.PENDING_APPROVAL)
    rule = an_approval_rule(olivia, tmp_path)
    now = timezone.now()
    return ApprovalRequest.objects.create(
        job=job, rule=rule, rule_name=rule.name, required_level="admin", reason="a100s: hardware", expires_at=now
    )


def a_quota(olivia: User, tmp_path: Path) -> Quota:
    return Quota.objects.create(
        scope="user", target=olivia.username, quota_type="concurrent_jobs", limit=2, action="queue"
    )


def a_channel(olivia: User, tmp_path: Path) -> Channel:
    return Channel.objects.create(
        name="ops hook",
        channel_type="webhook",
        events=["job.completed", "job.failed"],
        url="https://hooks.example.com/cloudops",
        secret="whsec_c2VjcmV0",
    )


def a_delivery(olivia: User, tmp_path: Path) -> Delivery:
    channel = a_channel(olivia, tmp_path)
    return Delivery.objects.create(
        channel=channel,
        event_type="job.failed",
        msg_id="msg_x",
        payload={"type": "job.failed"},
        status=DeliveryStatus.FAILED,
    )


FACTORIES: dict[type[models.Model], Callable[[User, Path], models.Model]] = {
    ProviderConfig: a_provider,
    Job: a_job,
    CircuitBreaker: a_circuit,
    MetricsConfig: a_metrics_config,
    User: a_user,
    Group: a_group,
    AuditEntry: an_audit_entry,
    RateLimitBucket: a_rate_limit_bucket,
    ApiKey: an_api_key,
    ApprovalRule: an_approval_rule,
    ApprovalRequest: an_approval_request,
    Quota: a_quota,
    Channel: a_channel,
    Delivery: a_delivery,
}


def test_every_registered_model_has_a_populated_example() -> None:
    assert set(admin.site._registry) == set(FACTORIES)


@pytest.mark.parametrize("model", list(FACTORIES), ids=lambda m: m._meta.label)
def test_saving_a_change_form_unchanged_changes_nothing(
    model: type[models.Model], olivia: AbstractUser, tmp_path: Path
) -> None:
    obj = FACTORIES[model](olivia, tmp_path)  # type: ignore[arg-type]
    client = Client()
    client.force_login(olivia)
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    page = client.get(url)
    if page.status_code == 302:  # the rate-limit state has no page per row: its list is the page
        assert model is RateLimitBucket
        return
    assert page.status_code == 200
    form = ChangeFormParser()
    form.feed(page.content.decode())
    if "_save" not in form.buttons:
        return  # read-only: nothing to submit
    before = stored(obj)
    response = client.post(url, dict_of_lists(form.data + [("_save", "Save")]))
    errors = response.context["adminform"].form.errors if response.status_code == 200 else None
    assert response.status_code == 302, errors
    assert stored(obj) == before


def dict_of_lists(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    data: dict[str, list[str]] = {}
    for name, value in pairs:
        data.setdefault(name, []).append(value)
    return data
