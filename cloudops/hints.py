"""Setup hints: what an operator has not configured yet, for UIs to show (GET /api/cloud/hints).

Public and never rate limited (cloudops/ratelimit/rules.py), as the operations guide lists
it: a hint says *that* something is missing, never a value. Each hint names a section of
docs/hints.md that says how to fix it. Hint sources are app functions listed by dotted path
in settings.HINT_SOURCES, each returning the hints whose condition holds now.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from django.conf import settings
from django.utils.module_loading import import_string
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

Severity = Literal["warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("warning", "info")

# The page of the docs site (docs/hints.md) with one section per hint id.
DOCS_PAGE = "hints/"


@dataclass(frozen=True)
class Hint:
    """One hint. `id` is stable and unique in the list (a UI may remember it was dismissed);
    `anchor` is its section of docs/hints.md."""

    id: str
    severity: Severity
    message: str
    anchor: str

    @property
    def docs_url(self) -> str:
        return f"{settings.SIMPLETUNER_DOCS_URL}{DOCS_PAGE}#{self.anchor}"


def hint_list() -> list[Hint]:
    """The hints of every source in settings.HINT_SOURCES, warnings first."""
    found: list[Hint] = []
    for path in settings.HINT_SOURCES:
        source: Callable[[], Iterable[Hint]] = import_string(path)
        found += source()
    return sorted(found, key=lambda hint: SEVERITIES.index(hint.severity))


class HintOutputSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="Stable while the condition holds, unique in the list.")
    severity = serializers.ChoiceField(choices=list(SEVERITIES))
    message = serializers.CharField(help_text="What is missing and what it means, for a person to read.")
    docs_url = serializers.CharField(help_text="The docs section that says how to fix it.")


class HintsOutputSerializer(serializers.Serializer):
    hints = HintOutputSerializer(many=True)


class HintsView(APIView):
    """Public setup hints (no secrets): an empty list once the server is fully set up."""

    permission_classes = [AllowAny]

    @extend_schema(operation_id="cloud_hints", responses={200: HintsOutputSerializer})
    def get(self, request: Request) -> Response:
        return Response(HintsOutputSerializer({"hints": hint_list()}).data)
