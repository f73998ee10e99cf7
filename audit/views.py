from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.selectors import audit_entries, audit_stats
from audit.serializers import (
    AuditListBodySerializer,
    AuditQuerySerializer,
    AuditStatsOutputSerializer,
    AuditStatsQuerySerializer,
    AuditVerifyOutputSerializer,
    AuditVerifyQuerySerializer,
)
from audit.verification import AuditRangeError, audit_verify
from cloudops.permissions import StaffPermission

# Reading the trail in any form is what the admin calls viewing audit entries.
VIEW_AUDIT = [StaffPermission.of(view="audit.view_auditentry")]


class AuditListView(APIView):
    """Audit entries, newest first, with a real total.

    Page with `offset`, or with `cursor`: pass the `next_cursor` of one page to get the next
    (stable while new entries arrive)."""

    permission_classes = VIEW_AUDIT

    @extend_schema(parameters=[AuditQuerySerializer], responses={200: AuditListBodySerializer})
    def get(self, request: Request) -> Response:
        query = AuditQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        params = dict(query.validated_data)
        limit, offset, cursor = params.pop("limit"), params.pop("offset"), params.pop("cursor", None)
        entries = audit_entries(**params)
        total = entries.count()
        page_source = entries.filter(sequence__lt=cursor) if cursor else entries[offset:]
        page = list(page_source[: limit + 1])
        more, page = len(page) > limit, page[:limit]
        body = {
            "entries": page,
            "total": total,
            "limit": limit,
            "offset": None if cursor else offset,
            "next_cursor": str(page[-1].sequence) if more and page else None,
        }
        return Response(AuditListBodySerializer(body).data)


class AuditVerifyView(APIView):
    """Verify the HMAC chain, whole or `from_sequence`..`to_sequence`.

    200 with `ok: true`, or `ok: false` with the `reason` and the `first_bad_sequence`.
    A whole chain of a million entries takes tens of seconds: verify ranges here, or run
    `manage.py audit_verify` from cron."""

    permission_classes = VIEW_AUDIT

    @extend_schema(parameters=[AuditVerifyQuerySerializer], responses={200: AuditVerifyOutputSerializer})
    def get(self, request: Request) -> Response:
        query = AuditVerifyQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        try:
            result = audit_verify(**query.validated_data, trigger="api")
        except AuditRangeError as exc:
            raise ValidationError({exc.parameter: [str(exc)]}) from exc
        return Response(AuditVerifyOutputSerializer(result.as_dict()).data)


class AuditStatsView(APIView):
    """Totals, per event type, last 24 h, oldest and newest entries, the chain head and the
    latest verification."""

    permission_classes = VIEW_AUDIT

    @extend_schema(responses={200: AuditStatsOutputSerializer})
    def get(self, request: Request) -> Response:
        AuditStatsQuerySerializer(data=request.query_params.dict()).is_valid(raise_exception=True)
        return Response(AuditStatsOutputSerializer(audit_stats()).data)
