"""/api/approvals/rules: admins list, create, change and delete rules; every bad field is a
400 naming it; nobody else gets in."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from rest_framework.test import APIClient

from audit.models import AuditEntry
from governance.models import ApprovalRule
from tests.conftest import client_for, grant

pytestmark = pytest.mark.django_db

RULE = {
    "name": "big spend",
    "condition": "cost_exceeds",
    "threshold": 50,
    "applies_to_provider": "replicate",
    "required_approver_level": "admin",
    "exempt_levels": ["admin"],
    "priority": 10,
    "enabled": True,
}


def post(client: APIClient, body: dict[str, Any]) -> Any:
    return client.post("/api/approvals/rules", body, format="json")


def test_an_admin_creates_lists_changes_and_deletes_a_rule(adam_client: APIClient) -> None:
    created = post(adam_client, RULE)
    assert created.status_code == 201, created.json()
    rule = created.json()["rule"]
    assert {k: rule[k] for k in RULE} == RULE
    assert rule["updated_by"] == "adam"
    listed = adam_client.get("/api/approvals/rules").json()
    assert listed["total"] == 1 and listed["rules"][0]["id"] == rule["id"]
    path = f"/api/approvals/rules/{rule['id']}"
    changed = adam_client.patch(path, {"threshold": 75.5, "enabled": False}, format="json")
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["rule"]["threshold"], changed.json()["rule"]["enabled"]) == (75.5, False)
    assert adam_client.get(path).json()["rule"]["name"] == "big spend"
    assert adam_client.delete(path).status_code == 204
    assert not ApprovalRule.objects.exists()
    assert adam_client.get(path).status_code == 404
    actions = list(AuditEntry.objects.filter(target_type="approval_rule").values_list("action", flat=True))
    assert sorted(actions) == ["create", "delete", "update"]


def test_rules_are_listed_in_evaluation_order(staff_client: APIClient) -> None:
    for name, priority in (("third", 30), ("first", 1), ("second", 5)):
        assert post(staff_client, {"name": name, "condition": "first_job", "priority": priority}).status_code == 201
    names = [rule["name"] for rule in staff_client.get("/api/approvals/rules").json()["rules"]]
    assert names == ["first", "second", "third"]


@pytest.mark.parametrize("client_name", ["vera_client", "alice_client", "lena_client", "clerk_client"])
def test_only_admins_manage_rules(request: pytest.FixtureRequest, client_name: str) -> None:
    client = request.getfixturevalue(client_name)
    assert client.get("/api/approvals/rules").status_code == 403
    refused = post(client, RULE)
    assert refused.status_code == 403 and "approval rules" in refused.json()["detail"]
    assert not ApprovalRule.objects.exists()


def test_staff_with_the_rule_permissions_manage_rules(clerk: AbstractUser) -> None:
    client = client_for(grant(clerk, "governance.view_approvalrule", "governance.add_approvalrule"))
    assert post(client, RULE).status_code == 201
    assert client.get("/api/approvals/rules").json()["total"] == 1
    rule_id = ApprovalRule.objects.get().pk
    assert client.delete(f"/api/approvals/rules/{rule_id}").status_code == 403


def test_anonymous_callers_are_asked_to_authenticate(anon: APIClient) -> None:
    assert anon.get("/api/approvals/rules").status_code == 401


@pytest.mark.parametrize(
    "change, field, words",
    [
        ({"condition": "hardware_type", "threshold": "gpu-[a100"}, "threshold", "never closed"),
        ({"condition": "hardware_type", "threshold": "gpu a100"}, "threshold", "not a valid glob"),
        ({"condition": "hardware_type", "threshold": 5}, "threshold", "glob string"),
        ({"condition": "sometimes"}, "condition", "not a valid choice"),
        ({"condition": "cost_exceeds", "threshold": "50"}, "threshold", "number of USD"),
        ({"condition": "cost_exceeds", "threshold": -1}, "threshold", "from 0"),
        ({"condition": "daily_jobs_exceed", "threshold": 2.5}, "threshold", "whole number"),
        ({"condition": "daily_jobs_exceed", "threshold": True}, "threshold", "whole number"),
        ({"condition": "provider", "threshold": "aws"}, "threshold", "provider name"),
        ({"condition": "first_job", "threshold": 3}, "threshold", "no threshold"),
        ({"applies_to_provider": "aws"}, "applies_to_provider", "unknown provider"),
        ({"priority": "high"}, "priority", "valid integer"),
        ({"priority": 1.5}, "priority", "valid integer"),
        ({"exempt_levels": ["boss"]}, "exempt_levels", "unknown role"),
        ({"exempt_levels": "lead"}, "exempt_levels", "Expected a list"),
        ({"exempt_levels": None}, "exempt_levels", "may not be null"),
        ({"required_approver_level": "viewer"}, "required_approver_level", "not a valid choice"),
        ({"enabled": "yes"}, "enabled", "valid boolean"),
        ({"colour": "red"}, "colour", "Unknown field"),
    ],
)
def test_a_bad_field_is_a_400_naming_it(adam_client: APIClient, change: dict[str, Any], field: str, words: str) -> None:
    response = post(adam_client, {**RULE, **change})
    assert response.status_code == 400, response.json()
    assert words in str(response.json()["errors"][field])
    assert not ApprovalRule.objects.exists()


def test_a_change_of_condition_is_checked_against_the_stored_threshold(adam_client: APIClient) -> None:
    rule_id = post(adam_client, RULE).json()["rule"]["id"]
    response = adam_client.patch(f"/api/approvals/rules/{rule_id}", {"condition": "hardware_type"}, format="json")
    assert response.status_code == 400 and "glob" in str(response.json()["errors"]["threshold"])
    assert ApprovalRule.objects.get().condition == "cost_exceeds"


def test_rule_names_are_unique(adam_client: APIClient) -> None:
    assert post(adam_client, RULE).status_code == 201
    response = post(adam_client, RULE)
    assert response.status_code == 400 and "already exists" in str(response.json()["errors"]["name"])


def test_a_rule_needs_a_name_and_a_condition(adam_client: APIClient) -> None:
    response = post(adam_client, {"threshold": 5})
    assert response.status_code == 400
    assert set(response.json()["errors"]) >= {"name", "condition"}
