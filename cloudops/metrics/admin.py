"""Admin: the metrics configuration (categories, apply a template, preview).

One row: the changelist goes straight to it. Saving goes through the same service as the
API, so the change is validated and audited (`config.changed`).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from cloudops.admin_lists import timestamp_column
from cloudops.auditing import Actor
from cloudops.metrics.categories import CATEGORIES, TEMPLATES
from cloudops.metrics.exposition import render
from cloudops.metrics.models import MetricsConfig
from cloudops.metrics.services import metrics_apply_template, metrics_config_get, metrics_config_update


class TemplateSelect(forms.Select):
    """Each template's categories on its option, for template_note.js."""

    def create_option(self, name: str, value: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(name, value, *args, **kwargs)
        if value in TEMPLATES:
            option["attrs"]["data-categories"] = ", ".join(template_categories(str(value)))
        return option


def template_categories(name: str) -> list[str]:
    return list(TEMPLATES[name]["categories"])  # type: ignore[call-overload]


def matching_template(categories: list[str]) -> str | None:
    """The template exporting exactly these categories, if one does."""
    return next((name for name in TEMPLATES if set(template_categories(name)) == set(categories)), None)


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
        widget=TemplateSelect,
        help_text="A template replaces the categories ticked above with its own and turns the export on.",
    )

    class Meta:
        model = MetricsConfig
        fields = ["prometheus_enabled", "prometheus_categories"]


@admin.register(MetricsConfig)
class MetricsConfigAdmin(admin.ModelAdmin):
    form = MetricsConfigForm
    audited_by_service = frozenset({"change"})  # metrics_config_update, metrics_apply_template
    fields = ["prometheus_enabled", "prometheus_categories", "template_in_use", "apply_template", "preview"]
    fields += ["updated_at_display", "updated_by"]
    readonly_fields = ["template_in_use", "preview", "updated_at_display", "updated_by"]
    updated_at_display = timestamp_column("updated_at", "Updated at")

    class Media:
        js = ["metrics/admin/template_note.js"]

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

    @admin.display(description="Template")
    def template_in_use(self, obj: MetricsConfig) -> str:
        name = matching_template(obj.prometheus_categories)
        if name is None:
            return "None: the saved categories were chosen by hand."
        return f"The saved categories are the {name} template's."

    def save_model(self, request: HttpRequest, obj: MetricsConfig, form: forms.Form, change: bool) -> None:
        actor = Actor.from_request(request)
        template = form.cleaned_data.get("apply_template")
        if template:
            saved = metrics_apply_template(name=template, request=request, actor=actor)
            self._say_template_won(request, template, form)
        else:
            saved = metrics_config_update(
                prometheus_enabled=form.cleaned_data["prometheus_enabled"],
                prometheus_categories=form.cleaned_data["prometheus_categories"],
                request=request,
                actor=actor,
            )
        # The form's instance holds what was ticked; Django's "changed" message names obj,
        # which must be what was saved.
        obj.prometheus_enabled, obj.prometheus_categories = saved.prometheus_enabled, saved.prometheus_categories

    def _say_template_won(self, request: HttpRequest, template: str, form: forms.Form) -> None:
        """A template wins over the ticks: say so when the ticks asked for something else."""
        ticked = form.cleaned_data.get("prometheus_categories") or []
        exported = ", ".join(template_categories(template))
        if "prometheus_categories" in form.changed_data and set(ticked) != set(template_categories(template)):
            self.message_user(
                request,
                f"The {template} template overrode the categories ticked by hand ({', '.join(ticked) or 'none'}): "
                f"the export now has the template's ({exported}).",
                level=messages.WARNING,
            )
