"""Providers and jobs API: parse, call one service, serialize."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cloudops.net import client_ip
from cloudops.permissions import IsStaff
from providers.config import UnknownProvider, provider_config_get, provider_config_list, provider_config_update
from providers.errors import ProviderError
from providers.jobs import SubmitFailed, job_cancel, job_logs, job_submit
from providers.models import ProviderConfig
from providers.selectors import job_list, jobs_visible_to
from providers.serializers import (
    JobListQuerySerializer,
    JobOutputSerializer,
    JobSubmitInputSerializer,
    ProviderConfigInputSerializer,
    ProviderConfigOutputSerializer,
    ProviderPublicSerializer,
    output_roots,
)
from providers.webhooks import WebhookOutcome, webhook_admit, webhook_receive, webhook_too_large


def provider_error_response(error: ProviderError, **extra: Any) -> Response:
    """A provider failure as the caller sees it: which provider, what happened, when to retry."""
    body = {"detail": error.message, "provider": error.provider, **extra}
    if error.status_code is not None:
        body["provider_status"] = error.status_code
    response = Response(body, status=error.http_status)
    if error.retry_after is not None:
        response["Retry-After"] = str(max(1, round(error.retry_after)))
    return response


# --- Providers -----------------------------------------------------------------------------------


class ProviderListView(APIView):
    """Public: provider names, display names and whether they are enabled."""

    permission_classes = [AllowAny]

    @extend_schema(responses={200: ProviderPublicSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return Response({"providers": ProviderPublicSerializer(provider_config_list(), many=True).data})


class ProviderDetailView(APIView):
    """A provider's full configuration (staff). PUT and PATCH change only the fields sent."""

    permission_classes = [IsStaff]

    def _config(self, provider: str) -> ProviderConfig:
        try:
            return provider_config_get(provider)
        except UnknownProvider:
            raise Http404 from None

    @extend_schema(responses={200: ProviderConfigOutputSerializer})
    def get(self, request: Request, provider: str) -> Response:
        return Response({"provider": ProviderConfigOutputSerializer(self._config(provider)).data})

    @extend_schema(request=ProviderConfigInputSerializer, responses={200: ProviderConfigOutputSerializer})
    def put(self, request: Request, provider: str) -> Response:
        config = self._config(provider)
        data = ProviderConfigInputSerializer(data=request.data, context={"provider_config": config})
        data.is_valid(raise_exception=True)
        config = provider_config_update(provider_config=config, changes=data.validated_data, request=request)
        return Response({"provider": ProviderConfigOutputSerializer(config).data})

    @extend_schema(request=ProviderConfigInputSerializer, responses={200: ProviderConfigOutputSerializer})
    def patch(self, request: Request, provider: str) -> Response:
        return self.put(request, provider)


# --- Jobs ----------------------------------------------------------------------------------------


def _job_body(job: Any, **extra: Any) -> dict[str, Any]:
    return {"job": JobOutputSerializer(job, context={"output_roots": output_roots()}).data, **extra}


def _idempotency_key(request: Request, body_key: str | None) -> str | None:
    header = request.headers.get("Idempotency-Key")
    if header is not None and (not header.strip() or len(header) > 255):
        raise serializers.ValidationError({"Idempotency-Key": ["must be 1 to 255 characters."]})
    if header and body_key and header != body_key:
        raise serializers.ValidationError({"idempotency_key": ["differs from the Idempotency-Key header."]})
    return header or body_key


class JobListView(APIView):
    """GET: jobs you may see (staff: all), filtered and paged. POST: an alias of /submit."""

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, many=True, description="repeat or comma-separate"),
            OpenApiParameter("provider", str),
            OpenApiParameter("owner", str, description="username"),
            OpenApiParameter("limit", int, description="1-500, default 50"),
            OpenApiParameter("offset", int),
        ],
        responses={200: JobOutputSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        params: dict[str, Any] = {k: v for k, v in request.query_params.items() if k != "status"}
        statuses = [s.strip() for raw in request.query_params.getlist("status") for s in raw.split(",") if s.strip()]
        if statuses:
            params["status"] = statuses
        query = JobListQuerySerializer(data=params)
        query.is_valid(raise_exception=True)
        v = query.validated_data
        page = job_list(
            user=request.user,
            statuses=v.get("status"),
            provider=v.get("provider", ""),
            owner=v.get("owner", ""),
            limit=v["limit"],
            offset=v["offset"],
        )
        roots = output_roots()
        return Response(
            {
                "jobs": JobOutputSerializer(page.jobs, many=True, context={"output_roots": roots}).data,
                "total": page.total,
                "limit": page.limit,
                "offset": page.offset,
            }
        )

    @extend_schema(request=JobSubmitInputSerializer, responses={201: JobOutputSerializer})
    def post(self, request: Request) -> Response:
        return submit(request)


class JobSubmitView(APIView):
    @extend_schema(request=JobSubmitInputSerializer, responses={201: JobOutputSerializer})
    def post(self, request: Request) -> Response:
        return submit(request)


def submit(request: Request) -> Response:
    data = JobSubmitInputSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    values = dict(data.validated_data)
    key = _idempotency_key(request, values.pop("idempotency_key", None))
    try:
        result = job_submit(owner=request.user, idempotency_key=key, request=request, **values)
    except SubmitFailed as failed:
        return provider_error_response(failed.error, job_id=failed.job.pk, **_job_body(failed.job))
    body = _job_body(
        result.job,
        job_id=result.job.pk,
        status=result.job.status,
        idempotent_hit=not result.created,
        warnings=result.warnings,
    )
    return Response(body, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


class JobDetailView(APIView):
    @extend_schema(responses={200: JobOutputSerializer})
    def get(self, request: Request, job_id: str) -> Response:
        return Response(_job_body(get_object_or_404(jobs_visible_to(request.user), pk=job_id)))


class JobCancelView(APIView):
    @extend_schema(request=None, responses={200: JobOutputSerializer})
    def post(self, request: Request, job_id: str) -> Response:
        job = get_object_or_404(jobs_visible_to(request.user), pk=job_id)
        try:
            job = job_cancel(job=job, request=request)
        except ProviderError as exc:
            return provider_error_response(exc, job_id=job.pk)
        return Response(_job_body(job, job_id=job.pk, status=job.status))


class JobLogsView(APIView):
    @extend_schema(responses={200: None})
    def get(self, request: Request, job_id: str) -> Response:
        job = get_object_or_404(jobs_visible_to(request.user), pk=job_id)
        logs = job_logs(job=job)
        return Response(
            {
                "job_id": job.pk,
                "status": job.status,
                "logs": logs.text,
                "truncated": logs.truncated,
                "source": logs.source,
            }
        )


# --- Inbound webhooks ------------------------------------------------------------------------------


def _read_capped(request: HttpRequest, limit: int) -> bytes | None:
    """The body, or None if it is longer than `limit` (announced or actual)."""
    try:
        announced = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        announced = 0
    if announced > limit:
        return None
    body = request.read(limit + 1)
    return None if len(body) > limit else body


def _outcome(outcome: WebhookOutcome) -> JsonResponse:
    return JsonResponse(outcome.body, status=outcome.status_code)


@csrf_exempt
@require_POST
def webhook(request: HttpRequest, provider: str) -> JsonResponse:
    """POST /api/webhooks/{provider}: no login; the allowlist and the signature authenticate."""
    try:
        config = provider_config_get(provider)
    except UnknownProvider:
        return JsonResponse({"detail": f"Unknown provider {provider!r}."}, status=404)
    ip = client_ip(request)
    refused = webhook_admit(provider_config=config, ip=ip)
    if refused is not None:
        return _outcome(refused)
    body = _read_capped(request, settings.SIMPLETUNER_WEBHOOK_MAX_BYTES)
    if body is None:
        return _outcome(webhook_too_large(provider_config=config, ip=ip))
    headers = {name.lower(): value for name, value in request.headers.items()}
    return _outcome(webhook_receive(provider_config=config, body=body, headers=headers, ip=ip))
