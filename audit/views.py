from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.selectors import audit_entries
from audit.serializers import AuditEntryOutputSerializer, AuditQuerySerializer
from cloudops.permissions import IsStaff


class AuditListView(APIView):
    """Audit entries, newest first, with a real total.

    Page with `offset`, or with `cursor`: pass the `next_cursor` of one page to get the next
    (stable while new entries arrive)."""

    permission_classes = [IsStaff]

    @extend_schema(parameters=[AuditQuerySerializer], responses={200: AuditEntryOutputSerializer(many=True)})
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
        return Response(
            {
                "entries": AuditEntryOutputSerializer(page, many=True).data,
                "total": total,
                "limit": limit,
                "offset": None if cursor else offset,
                "next_cursor": str(page[-1].sequence) if more and page else None,
            }
        )
