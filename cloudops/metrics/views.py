"""The metrics API: configuration (staff), preview (staff) and the Prometheus scrape."""

from __future__ import annotations

import hmac

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cloudops import secrets
from cloudops.metrics.categories import TEMPLATES
from cloudops.metrics.django_process import django_metrics_follow
from cloudops.metrics.exposition import CONTENT_TYPE, metric_count, render
from cloudops.metrics.serializers import (
    MetricsConfigInputSerializer,
    MetricsConfigOutputSerializer,
    MetricsPreviewOutputSerializer,
    MetricsPreviewQuerySerializer,
)
from cloudops.metrics.services import (
    UnknownTemplate,
    metrics_apply_template,
    metrics_config_get,
    metrics_config_update,
)
from cloudops.permissions import StaffPermission

DISABLED_HINT = (
    "Prometheus export is disabled. Enable it in the admin (Metrics) or with "
    'PUT /api/cloud/metrics/config {"prometheus_enabled": true}.\n'
)
TOKEN_SECRET = "SIMPLETUNER_METRICS_TOKEN"
# The admin's permissions on the metrics configuration, which the API follows.
METRICS_CONFIG_PERMISSION = StaffPermission.of(view="metrics.view_metricsconfig", change="metrics.change_metricsconfig")


class MetricsConfigView(APIView):
    """What the scrape endpoint exports. PUT changes either field or both (audited)."""

    permission_classes = [METRICS_CONFIG_PERMISSION]

    @extend_schema(responses={200: MetricsConfigOutputSerializer})
    def get(self, request: Request) -> Response:
        return Response(MetricsConfigOutputSerializer(metrics_config_get()).data)

    @extend_schema(request=MetricsConfigInputSerializer, responses={200: MetricsConfigOutputSerializer})
    def put(self, request: Request) -> Response:
        body = MetricsConfigInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        config = metrics_config_update(**body.validated_data, request=request)
        return Response(MetricsConfigOutputSerializer(config).data)


class MetricsTemplateView(APIView):
    """Apply a template: export its categories and turn the export on."""

    permission_classes = [METRICS_CONFIG_PERMISSION]

    @extend_schema(
        request=None,
        parameters=[OpenApiParameter("template", str, OpenApiParameter.PATH, enum=list(TEMPLATES))],
        responses={200: MetricsConfigOutputSerializer},
    )
    def post(self, request: Request, template: str) -> Response:
        try:
            config = metrics_apply_template(name=template, request=request)
        except UnknownTemplate as exc:
            raise NotFound(str(exc)) from exc
        return Response(MetricsConfigOutputSerializer(config).data)


class MetricsPreviewView(APIView):
    """What the scrape would return for `categories` (default: the configured ones), whether
    or not the export is enabled. Changes nothing."""

    permission_classes = [METRICS_CONFIG_PERMISSION]

    @extend_schema(parameters=[MetricsPreviewQuerySerializer], responses={200: MetricsPreviewOutputSerializer})
    def get(self, request: Request) -> Response:
        unknown = sorted(set(request.query_params) - {"categories"})
        if unknown:
            raise ValidationError({unknown[0]: ["Unknown query parameter."]})
        query = MetricsPreviewQuerySerializer(data={"categories": request.query_params.getlist("categories")})
        query.is_valid(raise_exception=True)
        categories = query.validated_data["categories"] if "categories" in request.query_params else None
        if categories is None:
            categories = metrics_config_get().prometheus_categories
        content = render(categories)
        data = {"categories": categories, "content": content.decode(), "metric_count": metric_count(content)}
        return Response(MetricsPreviewOutputSerializer(data).data)


def _text(body: str, status: int) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="text/plain; charset=utf-8")


def _token_refused(request: HttpRequest) -> HttpResponse | None:
    found = secrets.lookup(TOKEN_SECRET)
    if found.value is None:
        if found.errors:
            # A store that may hold the token did not answer: fail closed rather than serve
            # the metrics openly because the token could not be read.
            return _text("The metrics token cannot be read from the secret stores; try again later.\n", 503)
        return None
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), found.value.encode()):
        return None
    response = _text("A valid bearer token is required to scrape metrics.\n", 401)
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


@require_safe
def prometheus(request: HttpRequest) -> HttpResponse:
    """The scrape endpoint. A plain Django view: Prometheus speaks text, not DRF's JSON, and
    its bearer token is the metrics token, not an API key."""
    refused = _token_refused(request)
    if refused is not None:
        return refused
    config = metrics_config_get()
    django_metrics_follow(config)  # this process records Django's metrics from now on, or stops
    if not config.prometheus_enabled:
        return _text(DISABLED_HINT, 404)
    return HttpResponse(render(config.prometheus_categories), content_type=CONTENT_TYPE)
