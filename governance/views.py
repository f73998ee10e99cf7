"""Approvals API: rules (admins) and requests (leads and admins decide). Parse, call one
service, serialize."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cloudops.openapi import ErrorOutputSerializer
from cloudops.permissions import request_user
from governance.approvals import approval_approve, approval_reject
from governance.models import ApprovalRequest, ApprovalRule
from governance.roles import Role, RulesAdmin, role_of
from governance.serializers import (
    ApprovalRequestBodySerializer,
    ApprovalRequestListBodySerializer,
    ApprovalRequestListQuerySerializer,
    ApprovalRuleBodySerializer,
    ApprovalRuleInputSerializer,
    ApprovalRuleListBodySerializer,
    DecisionInputSerializer,
)
from governance.services import approval_rule_create, approval_rule_delete, approval_rule_update


class ApprovalRuleListView(APIView):
    """GET: every rule, in the order they are evaluated. POST: a new rule."""

    permission_classes = [RulesAdmin]

    @extend_schema(operation_id="approval_rules_list", responses={200: ApprovalRuleListBodySerializer})
    def get(self, request: Request) -> Response:
        rules = list(ApprovalRule.objects.order_by("priority", "id"))
        return Response(ApprovalRuleListBodySerializer({"rules": rules, "total": len(rules)}).data)

    @extend_schema(request=ApprovalRuleInputSerializer, responses={201: ApprovalRuleBodySerializer})
    def post(self, request: Request) -> Response:
        data = ApprovalRuleInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rule = approval_rule_create(values=data.validated_data, request=request)
        return Response(ApprovalRuleBodySerializer({"rule": rule}).data, status=status.HTTP_201_CREATED)


class ApprovalRuleDetailView(APIView):
    """One rule. PUT and PATCH change only the fields sent; DELETE removes the rule (requests it
    raised keep its name and level)."""

    permission_classes = [RulesAdmin]

    @extend_schema(responses={200: ApprovalRuleBodySerializer})
    def get(self, request: Request, rule_id: int) -> Response:
        return Response(ApprovalRuleBodySerializer({"rule": get_object_or_404(ApprovalRule, pk=rule_id)}).data)

    @extend_schema(request=ApprovalRuleInputSerializer, responses={200: ApprovalRuleBodySerializer})
    def put(self, request: Request, rule_id: int) -> Response:
        rule = get_object_or_404(ApprovalRule, pk=rule_id)
        data = ApprovalRuleInputSerializer(rule, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        rule = approval_rule_update(rule=rule, changes=data.validated_data, request=request)
        return Response(ApprovalRuleBodySerializer({"rule": rule}).data)

    @extend_schema(request=ApprovalRuleInputSerializer, responses={200: ApprovalRuleBodySerializer})
    def patch(self, request: Request, rule_id: int) -> Response:
        return self.put(request, rule_id)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, rule_id: int) -> Response:
        approval_rule_delete(rule=get_object_or_404(ApprovalRule, pk=rule_id), request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Requests --------------------------------------------------------------------------------------


def _requests_visible_to(user: Any) -> QuerySet[ApprovalRequest]:
    """Leads and admins see every request; others their own submissions' requests."""
    rows = ApprovalRequest.objects.select_related("job", "job__owner")
    return rows if role_of(user) >= Role.LEAD else rows.filter(job__owner=user)


class ApprovalRequestListView(APIView):
    """Held submissions, newest first: every one for leads and admins, your own otherwise.
    `status` filters (pending, approved, rejected, expired)."""

    @extend_schema(parameters=[ApprovalRequestListQuerySerializer], responses={200: ApprovalRequestListBodySerializer})
    def get(self, request: Request) -> Response:
        # A plain dict: from a QueryDict, DRF would read `status=` as "no filter" instead of a 400.
        query = ApprovalRequestListQuerySerializer(data=dict(request.query_params.items()))
        query.is_valid(raise_exception=True)
        rows = _requests_visible_to(request_user(request))
        if query.validated_data.get("status"):
            rows = rows.filter(status=query.validated_data["status"])
        found = list(rows.order_by("-created_at", "-id")[: query.validated_data["limit"]])
        return Response(ApprovalRequestListBodySerializer({"requests": found, "total": len(found)}).data)


class _DecisionView(APIView):
    decide: Callable[..., ApprovalRequest]

    @extend_schema(
        request=DecisionInputSerializer, responses={200: ApprovalRequestBodySerializer, 409: ErrorOutputSerializer}
    )
    def post(self, request: Request, request_id: int) -> Response:
        data = DecisionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        approval = get_object_or_404(_requests_visible_to(request_user(request)), pk=request_id)
        approval = type(self).decide(
            approval=approval, user=request_user(request), reason=data.validated_data["reason"], request=request
        )
        approval.job.refresh_from_db()
        return Response(ApprovalRequestBodySerializer({"request": approval}).data)


class ApprovalApproveView(_DecisionView):
    """Approve: the job is submitted to its provider (once, however many approve at once).
    Leads or admins, as the rule asks; never the submitter."""

    decide = staticmethod(approval_approve)


class ApprovalRejectView(_DecisionView):
    """Reject with a `reason`: the job is cancelled and its error says why."""

    decide = staticmethod(approval_reject)
