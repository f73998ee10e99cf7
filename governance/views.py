"""Approvals API: rules (admins) and requests (leads and admins decide). Parse, call one
service, serialize."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.models import ApprovalRule
from governance.roles import RulesAdmin
from governance.serializers import (
    ApprovalRuleBodySerializer,
    ApprovalRuleInputSerializer,
    ApprovalRuleListBodySerializer,
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
