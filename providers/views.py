"""Providers and jobs API: parse, call one service, serialize."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cloudops.net import client_ip
from cloudops.openapi import ErrorOutputSerializer
from cloudops.permissions import StaffPermission, refuse_unless_allowed, request_user
from governance.quotas import QuotaExceeded
from providers.config import UnknownProvider, provider_config_get, provider_config_list, provider_config_update
from providers.errors import ProviderError
from providers.jobs import job_cancel, job_logs
from providers.models import ProviderConfig
from providers.registry import provider_names
from providers.selectors import job_list, jobs_visible_to, may_change_job
from providers.serializers import (
    JobBodySerializer,
    JobCancelBodySerializer,
    JobListBodySerializer,
    JobListQuerySerializer,
    JobLogsBodySerializer,
    JobOutputsBodySerializer,
    JobSubmitBodySerializer,
    JobSubmitInputSerializer,
    ProviderBodySerializer,
    ProviderConfigInputSerializer,
    ProviderErrorBodySerializer,
    ProviderListBodySerializer,
    output_roots,
)
from providers.submit import SubmitFailed, job_submit
from providers.webhooks.receive import webhook_handle

# The answers of the endpoints that call a provider, when the provider fails.
PROVIDER_ERRORS = dict.fromkeys((502, 503, 504), ProviderErrorBodySerializer)


# 200 is a retry with the same Idempotency-Key; 409 the same key with another body.
SUBMIT_RESPONSES = {
    201: JobSubmitBodySerializer,
    200: JobSubmitBodySerializer,
    409: ErrorOutputSerializer,
    **PROVIDER_ERRORS,
}


def provider_error_response(error: ProviderError, **extra: Any) -> Response:
    """A provider failure as the caller sees it: which provider, what happened, when to retry."""
    body = {"detail": error.message, "provider": error.provider, **extra}
    if error.status_code is not None:
        body["provider_status"] = error.status_code
    response = Response(
        ProviderErrorBodySerializer(body, context={"output_roots": output_roots()}).data, status=error.http_status
    )
    if error.retry_after is not None:
        response["Retry-After"] = str(max(1, round(error.retry_after)))
    return response


# --- Providers -----------------------------------------------------------------------------------


class ProviderListView(APIView):
    """Public: provider names, display names and whether they are enabled."""

    permission_classes = [AllowAny]

    @extend_schema(operation_id="cloud_providers_list", responses={200: ProviderListBodySerializer})
    def get(self, request: Request) -> Response:
        return Response(ProviderListBodySerializer({"providers": provider_config_list()}).data)


def _provider_parameter() -> OpenApiParameter:
    return OpenApiParameter("provider", str, OpenApiParameter.PATH, enum=provider_names())


@extend_schema(parameters=[_provider_parameter()])
class ProviderDetailView(APIView):
    """A provider's full configuration (staff with the provider configuration permissions).
    PUT and PATCH change only the fields sent."""

    permission_classes = [
        StaffPermission.of(view="providers.view_providerconfig", change="providers.change_providerconfig")
    ]

    def _config(self, provider: str) -> ProviderConfig:
        try:
            return provider_config_get(provider)
        except UnknownProvider:
            raise Http404 from None

    @extend_schema(responses={200: ProviderBodySerializer})
    def get(self, request: Request, provider: str) -> Response:
        return Response(ProviderBodySerializer({"provider": self._config(provider)}).data)

    @extend_schema(request=ProviderConfigInputSerializer, responses={200: ProviderBodySerializer})
    def put(self, request: Request, provider: str) -> Response:
        config = self._config(provider)
        data = ProviderConfigInputSerializer(data=request.data, context={"provider_config": config})
        data.is_valid(raise_exception=True)
        config = provider_config_update(provider_config=config, changes=data.validated_data, request=request)
        return Response(ProviderBodySerializer({"provider": config}).data)

    @extend_schema(request=ProviderConfigInputSerializer, responses={200: ProviderBodySerializer})
    def patch(self, request: Request, provider: str) -> Response:
        return self.put(request, provider)


# --- Jobs ----------------------------------------------------------------------------------------


def _job_body(body: type[JobBodySerializer], job: Any, **extra: Any) -> dict[str, Any]:
    return body({"job": job, **extra}, context={"output_roots": output_roots()}).data


def _idempotency_key(request: Request, body_key: str | None) -> str | None:
    header = request.headers.get("Idempotency-Key")
    if header is not None and (not header.strip() or len(header) > 255):
        raise serializers.ValidationError({"Idempotency-Key": ["must be 1 to 255 characters."]})
    if header and body_key and header != body_key:
        raise serializers.ValidationError({"idempotency_key": ["differs from the Idempotency-Key header."]})
    return header or body_key


class JobListView(APIView):
    """GET: jobs you may see (all of them with providers.view_job), filtered and paged,
    newest first. Page with `offset` (at most 10,000), or with `cursor`: each page's
    `next_cursor` (or its `next` link) gives the next, at the same cost however deep.
    `total` counts up to 10,000; `total_exact` says whether more match (providers.paging).
    POST: an alias of /submit."""

    @extend_schema(parameters=[JobListQuerySerializer], responses={200: JobListBodySerializer})
    def get(self, request: Request) -> Response:
        params: dict[str, Any] = {k: v for k, v in request.query_params.items() if k != "status"}
        statuses = [s.strip() for raw in request.query_params.getlist("status") for s in raw.split(",") if s.strip()]
        if statuses:
            params["status"] = statuses
        query = JobListQuerySerializer(data=params)
        query.is_valid(raise_exception=True)
        v = query.validated_data
        page = job_list(
            user=request_user(request),
            statuses=v.get("status"),
            provider=v.get("provider", ""),
            owner=v.get("owner", ""),
            limit=v["limit"],
            offset=v["offset"],
            cursor=v.get("cursor"),
        )
        cursor = page.next_cursor.encode() if page.next_cursor else None
        body = {
            "jobs": page.jobs,
            "total": page.total,
            "total_exact": page.total_exact,
            "limit": page.limit,
            "offset": page.offset,
            "next_cursor": cursor,
            "next": _next_link(request, cursor),
        }
        return Response(JobListBodySerializer(body, context={"output_roots": output_roots()}).data)

    @extend_schema(request=JobSubmitInputSerializer, responses=SUBMIT_RESPONSES)
    def post(self, request: Request) -> Response:
        return submit(request)


def _next_link(request: Request, cursor: str | None) -> str | None:
    """This request's URL with `cursor` for the next page instead of any offset."""
    if cursor is None:
        return None
    query = request.query_params.copy()
    query.pop("offset", None)
    query["cursor"] = cursor
    return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")


class JobSubmitView(APIView):
    @extend_schema(request=JobSubmitInputSerializer, responses=SUBMIT_RESPONSES)
    def post(self, request: Request) -> Response:
        return submit(request)


def submit(request: Request) -> Response:
    refuse_unless_allowed(request_user(request), "submit_job")
    data = JobSubmitInputSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    values = dict(data.validated_data)
    key = _idempotency_key(request, values.pop("idempotency_key", None))
    try:
        result = job_submit(owner=request_user(request), idempotency_key=key, request=request, **values)
    except SubmitFailed as failed:
        return provider_error_response(failed.error, job_id=failed.job.pk, job=failed.job)
    except QuotaExceeded as refused:
        # The body names the quota, its limit and the usage, as numbers (docs/governance.md).
        return Response(refused.body, status=refused.status_code)
    body = _job_body(
        JobSubmitBodySerializer,
        result.job,
        job_id=result.job.pk,
        status=result.job.status,
        idempotent_hit=not result.created,
        warnings=result.warnings,
    )
    return Response(body, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


class JobDetailView(APIView):
    @extend_schema(operation_id="cloud_job_retrieve", responses={200: JobBodySerializer})
    def get(self, request: Request, job_id: str) -> Response:
        return Response(
            _job_body(JobBodySerializer, get_object_or_404(jobs_visible_to(request_user(request)), pk=job_id))
        )


class JobCancelView(APIView):
    @extend_schema(
        request=None, responses={200: JobCancelBodySerializer, 409: ErrorOutputSerializer, **PROVIDER_ERRORS}
    )
    def post(self, request: Request, job_id: str) -> Response:
        refuse_unless_allowed(request_user(request), "cancel_job")
        job = get_object_or_404(jobs_visible_to(request_user(request)), pk=job_id)
        if not may_change_job(request_user(request), job):
            raise PermissionDenied(
                "Cancelling another user's job needs staff status and the providers.change_job permission."
            )
        try:
            job = job_cancel(job=job, request=request)
        except ProviderError as exc:
            return provider_error_response(exc, job_id=job.pk)
        return Response(_job_body(JobCancelBodySerializer, job, job_id=job.pk, status=job.status))


class JobLogsView(APIView):
    @extend_schema(responses={200: JobLogsBodySerializer})
    def get(self, request: Request, job_id: str) -> Response:
        job = get_object_or_404(jobs_visible_to(request_user(request)), pk=job_id)
        logs = job_logs(job=job)
        body = {"job_id": job.pk, "status": job.status, "logs": logs.text, "truncated": logs.truncated}
        return Response(JobLogsBodySerializer({**body, "source": logs.source}).data)


class JobOutputsView(APIView):
    @extend_schema(responses={200: JobOutputsBodySerializer})
    def get(self, request: Request, job_id: str) -> Response:
        """The job's output objects with short-lived presigned download links (404 for a job
        the caller may not see, as the job itself)."""
        user = request_user(request)
        job = get_object_or_404(jobs_visible_to(user), pk=job_id)
        base_url = f"{request.scheme}://{request.get_host()}"
        links = import_module(settings.JOB_OUTPUTS).output_links(job_id=job.pk, user_id=user.pk, base_url=base_url)
        return Response(JobOutputsBodySerializer({"job_id": job.pk, "status": job.status, **links}).data)


# --- Inbound webhooks ------------------------------------------------------------------------------


def _announced_length(request: HttpRequest) -> int | None:
    try:
        return int(request.headers["Content-Length"])
    except (KeyError, ValueError):
        return None


@csrf_exempt
@require_POST
def webhook(request: HttpRequest, provider: str) -> JsonResponse:
    """POST /api/webhooks/{provider}: no login; the allowlist and the signature authenticate."""
    outcome = webhook_handle(
        provider=provider,
        headers={name.lower(): value for name, value in request.headers.items()},
        ip=client_ip(request),
        announced_length=_announced_length(request),
        read=request.read,
    )
    return JsonResponse(outcome.body, status=outcome.status_code)
