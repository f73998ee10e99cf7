"""Admin: the metrics configuration (categories, apply a template, preview).

One row: the changelist goes straight to it. Saving goes through the same service as the
API, so the change is validated and audited (`config.changed`).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from cloudops.auditing import Actor
from cloudops.metrics.categories import CATEGORIES, TEMPLATES
from cloudops.metrics.exposition import render
from cloudops.metrics.models import MetricsConfig
from cloudops.metrics.services import metrics_apply_template, metrics_config_get, metrics_config_update


class MetricsConfigForm(forms.ModelForm):
    prometheus_categories = forms.MultipleChoiceField(
        choices=[(name, f"{name}: {text}") for name, text in CATEGORIES.items()],
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )
    apply_template = forms.ChoiceField(
        choices=[("", "-- keep the categories above --")]
        + [(name, f"{name}: {', '.join(t['categories'])}") for name, t in TEMPLATES.items()],  # type: ignore[arg-type]
        required=False,
        help_text="A template replaces the categories and turns the export on.",
    )

    class Meta:
        model = MetricsConfig
        fields = ["prometheus_enabled", "prometheus_categories"]


@admin.register(MetricsConfig)
class MetricsConfigAdmin(admin.ModelAdmin):
    form = MetricsConfigForm
    audited_by_service = frozenset({"change"})  # metrics_config_update, metrics_apply_template
    fields = ["prometheus_enabled", "prometheus_categories", "apply_template", "preview", "updated_at", "updated_by"]
    readonly_fields = ["preview", "updated_at", "updated_by"]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None):  # type: ignore[no-untyped-def]
        config = metrics_config_get()
        return HttpResponseRedirect(reverse("admin:metrics_metricsconfig_change", args=[config.pk]))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Preview (what a scrape returns for the saved categories)")
    def preview(self, obj: MetricsConfig) -> str:
        return format_html(
            "<pre style='max-height: 30em; overflow: auto'>{}</pre>", render(obj.prometheus_categories).decode()
        )

    def save_model(self, request: HttpRequest, obj: MetricsConfig, form: forms.Form, change: bool) -> None:
        actor = Actor.from_request(request)
        template = form.cleaned_data.get("apply_template")
        if template:
            metrics_apply_template(name=template, request=request, actor=actor)
            return
        metrics_config_update(
            prometheus_enabled=form.cleaned_data["prometheus_enabled"],
            prometheus_categories=form.cleaned_data["prometheus_categories"],
            request=request,
            actor=actor,
        )
