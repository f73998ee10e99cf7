"""Quotas API: everyone reads their own limits and usage; admins see and manage every quota.
Parse, call one service, serialize."""

from __future__ import annotations

from django.db import IntegrityError
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cloudops.permissions import request_user
from governance.models import Quota
from governance.quota_serializers import QuotaBodySerializer, QuotaInputSerializer, QuotaListBodySerializer
from governance.quota_services import quota_create, quota_delete, quota_update
from governance.quotas import quota_overview, quotas_for
from governance.roles import QuotasAdmin, manages_quotas

_TWIN = "this scope, target and quota_type has a quota already (set at the same moment): change that one."


class QuotaListView(APIView):
    """GET: the quotas you may see (admins: all; others: those that apply to them) and your
    effective limits with your usage. POST (admins): a new quota."""

    permission_classes = [QuotasAdmin]

    @extend_schema(operation_id="quotas_list", responses={200: QuotaListBodySerializer})
    def get(self, request: Request) -> Response:
        user = request_user(request)
        rows = Quota.objects.all() if manages_quotas(user) else quotas_for(user)
        quotas = list(rows.order_by("scope", "target", "quota_type"))
        body = {"quotas": quotas, "total": len(quotas), "effective": quota_overview(user, timezone.now())}
        return Response(QuotaListBodySerializer(body).data)

    @extend_schema(request=QuotaInputSerializer, responses={201: QuotaBodySerializer})
    def post(self, request: Request) -> Response:
        data = QuotaInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            quota = quota_create(values=data.validated_data, request=request)
        except IntegrityError:
            raise ValidationError({"quota_type": [_TWIN]})
        return Response(QuotaBodySerializer({"quota": quota}).data, status=status.HTTP_201_CREATED)


class QuotaListAliasView(QuotaListView):
    """/api/quotas without the slash, as the other endpoints are spelled; out of the schema,
    which lists /api/quotas/ once."""

    schema = None


class QuotaDetailView(APIView):
    """One quota (admins). PUT and PATCH change only the fields sent; DELETE removes it."""

    permission_classes = [QuotasAdmin]

    def _quota(self, request: Request, quota_id: int) -> Quota:
        user = request_user(request)
        return get_object_or_404(Quota.objects.all() if manages_quotas(user) else quotas_for(user), pk=quota_id)

    @extend_schema(responses={200: QuotaBodySerializer})
    def get(self, request: Request, quota_id: int) -> Response:
        return Response(QuotaBodySerializer({"quota": self._quota(request, quota_id)}).data)

    @extend_schema(request=QuotaInputSerializer, responses={200: QuotaBodySerializer})
    def put(self, request: Request, quota_id: int) -> Response:
        quota = get_object_or_404(Quota, pk=quota_id)
        data = QuotaInputSerializer(quota, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        try:
            quota = quota_update(quota=quota, changes=data.validated_data, request=request)
        except IntegrityError:
            raise ValidationError({"quota_type": [_TWIN]})
        return Response(QuotaBodySerializer({"quota": quota}).data)

    @extend_schema(request=QuotaInputSerializer, responses={200: QuotaBodySerializer})
    def patch(self, request: Request, quota_id: int) -> Response:
        return self.put(request, quota_id)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, quota_id: int) -> Response:
        quota_delete(quota=get_object_or_404(Quota, pk=quota_id), request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)
