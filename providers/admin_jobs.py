"""Admin: jobs. The list at the same cost at a thousand and a million (cloudops.admin_lists);
the job page shows what an operator looks for (status, progress, error, the tail of the logs,
the outputs, run time and cost) and cancels with a confirmation, through job_cancel as the
API does (audited there). Nothing on the page is edited by hand: it has no Save button.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from rest_framework.exceptions import APIException

from cloudops.admin_confirm import ReadOnlyPageMixin, action_hidden, confirm_page, confirmed
from cloudops.admin_lists import (
    CappedCountPaginator,
    IndexedRelatedOnlyFilter,
    IndexedValuesFilter,
    timestamp_column,
    timestamp_text,
)
from providers.admin_display import duration_text, progress_text, size_text, status_badge
from providers.errors import ProviderError
from providers.jobs import job_cancel, job_logs
from providers.models import Job
from providers.selectors import job_output_root

LOG_TAIL_LINES = 40
# The job page lists this many output files; the S3 endpoint lists them all.
OUTPUT_LIST_LIMIT = 200

DETAIL_FIELDS = ["name", "owner", "provider", "external_id", "hardware", "dataset", "idempotency_key"]


@admin.register(Job)
class JobAdmin(ReadOnlyPageMixin, admin.ModelAdmin):
    """Jobs, newest first: a capped count, filter values by index seeks, the date filter
    instead of a date hierarchy (cloudops.admin_lists)."""

    list_display = ["id", "name", "owner", "provider", "status_display", "progress_display", "error_display"]
    list_display += ["hardware", "cost_usd", "created_at_display", "completed_at_display"]
    list_filter = ["status", ("provider", IndexedValuesFilter), ("owner", IndexedRelatedOnlyFilter), "created_at"]
    search_fields = ["id", "name", "external_id", "owner__username"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = ["cancel_selected"]
    fieldsets = [
        (None, {"fields": ["status_display", "progress_display", "error", "cancel_button"]}),
        ("Logs", {"fields": ["logs_tail"]}),
        ("Outputs", {"fields": ["outputs", "upload_display"]}),
        (
            "Run time and cost",
            {"fields": ["created_at_display", "started_at_display", "completed_at_display", "run_time", "cost_usd"]},
        ),
        ("Job", {"fields": [*DETAIL_FIELDS, "audit_link"]}),
        ("Submitted configuration", {"fields": ["config", "dataloader_config"], "classes": ["collapse"]}),
        (
            "Sync",
            {
                "fields": ["last_synced_at_display", "cancel_requested_at_display", "updated_at_display", "runner"],
                "classes": ["collapse"],
            },
        ),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [str(name) for _, options in self.fieldsets for name in options["fields"]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs are submitted through the API (quotas, cost limits, audit)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # job history carries costs and audit references

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("<job_id:job_id>/cancel/", view(self.cancel_view), name="providers_job_cancel"),
            path("<job_id:job_id>/logs/", view(self.logs_view), name="providers_job_logs"),
            path("<job_id:job_id>/output/<path:key>", view(self.output_view), name="providers_job_output"),
            *super().get_urls(),
        ]

    # --- The page's fields ----------------------------------------------------------------

    # To the second, the zone named (cloudops.admin_lists.timestamp_text).
    created_at_display = timestamp_column("created_at", "Created")
    started_at_display = timestamp_column("started_at", "Started")
    completed_at_display = timestamp_column("completed_at", "Completed")
    last_synced_at_display = timestamp_column("last_synced_at", "Last synced")
    cancel_requested_at_display = timestamp_column("cancel_requested_at", "Cancel requested")
    updated_at_display = timestamp_column("updated_at", "Updated")

    @admin.display(description="Status", ordering="status")
    def status_display(self, job: Job) -> SafeString:
        return status_badge(job.status)

    @admin.display(description="Progress")
    def progress_display(self, job: Job) -> str:
        return progress_text(job.progress) or "-"

    @admin.display(description="Error")
    def error_display(self, job: Job) -> str:
        return job.error if len(job.error) <= 80 else job.error[:79] + "…"

    @admin.display(description="Run time")
    def run_time(self, job: Job) -> str:
        return duration_text(job.run_seconds) or ("running" if job.started_at and not job.is_terminal else "-")

    @admin.display(description="Cancel")
    def cancel_button(self, job: Job) -> SafeString | str:
        if job.is_terminal:
            return f"Not possible: the job is {job.status}."
        url = reverse("admin:providers_job_cancel", args=[job.pk])
        return format_html('<a class="button cancel-job" href="{}">Cancel this job…</a>', url)

    @admin.display(description="Last lines")
    def logs_tail(self, job: Job) -> SafeString:
        logs = job_logs(job=job)
        lines = logs.text.splitlines()[-LOG_TAIL_LINES:]
        url = reverse("admin:providers_job_logs", args=[job.pk])
        source = "from the provider" if logs.source == "provider" else "as stored"
        note = " (the oldest lines were dropped: only the end is kept)" if logs.truncated else ""
        if not lines:
            return format_html("No logs yet ({}).", source)
        return format_html(
            '<pre class="job-logs" style="max-height:30em;overflow:auto;white-space:pre-wrap">{}</pre>'
            '<a href="{}" class="job-logs-all">All logs</a> ({} lines, {}{})',
            "\n".join(lines),
            url,
            len(logs.text.splitlines()),
            source,
            note,
        )

    @admin.display(description="Files")
    def outputs(self, job: Job) -> SafeString | str:
        found = import_module(settings.JOB_OUTPUTS).output_files(job.pk)
        links = format_html_join(
            "",
            '<li><a href="{}" class="job-output">{}</a> ({})</li>',
            (
                (reverse("admin:providers_job_output", args=[job.pk, key]), key, size_text(size))
                for key, size in found[:OUTPUT_LIST_LIMIT]
            ),
        )
        more = f" The first {OUTPUT_LIST_LIMIT} of {len(found)} are listed." if len(found) > OUTPUT_LIST_LIMIT else ""
        where = format_html(
            'Bucket <code>{}</code> in <code>{}</code>.{} <a href="{}" class="job-output-links">Download links</a> '
            "(expiring presigned URLs, as the API gives them to the job's owner).",
            job.pk,
            job_output_root(job.pk),
            more,
            reverse("job-outputs", args=[job.pk]),
        )
        remote = format_html('<p>At the provider: <a href="{0}">{0}</a></p>', job.output_url) if job.output_url else ""
        if not found:
            return format_html("<p>No files uploaded yet. {}</p>{}", where, remote)
        return format_html("<ul>{}</ul><p>{}</p>{}", links, where, remote)

    @admin.display(description="Uploads")
    def upload_display(self, job: Job) -> str:
        last = f", the last at {timestamp_text(job.last_upload_at)}" if job.last_upload_at else ""
        return f"{job.upload_objects} file(s), {size_text(job.upload_bytes)}{last}"

    @admin.display(description="Audit trail")
    def audit_link(self, job: Job) -> SafeString:
        url = reverse("admin:audit_auditentry_changelist") + f"?target_type=job&target_id={job.pk}"
        return format_html('<a href="{}">This job\'s audit entries</a>', url)

    # --- Views ------------------------------------------------------------------------------

    def _job(self, request: HttpRequest, job_id: str, *, change: bool = False) -> Job:
        job = get_object_or_404(Job.objects.select_related("owner"), pk=job_id)
        allowed = self.has_change_permission(request, job) if change else self.has_view_permission(request, job)
        if not allowed:
            raise PermissionDenied
        return job

    def logs_view(self, request: HttpRequest, job_id: str) -> HttpResponse:
        """All the logs the server has (or the provider gives), as plain text."""
        logs = job_logs(job=self._job(request, job_id))
        return HttpResponse(logs.text, content_type="text/plain; charset=utf-8")

    def output_view(self, request: HttpRequest, job_id: str, key: str) -> FileResponse:
        job = self._job(request, job_id)
        try:
            file, content_type = import_module(settings.JOB_OUTPUTS).output_open(job.pk, key)
        except FileNotFoundError:
            raise Http404("No such output file.") from None
        filename = key.rpartition("/")[2]
        return FileResponse(file, as_attachment=True, filename=filename, content_type=content_type)

    def cancel_view(self, request: HttpRequest, job_id: str) -> HttpResponse:
        """GET asks for confirmation; POST with post=yes cancels (job_cancel audits it)."""
        job = self._job(request, job_id, change=True)
        page = reverse("admin:providers_job_change", args=[job.pk])
        if request.method == "POST" and confirmed(request):
            self._cancel(request, job)
            return HttpResponseRedirect(page)
        return confirm_page(
            self,
            request,
            title="Cancel a job",
            question="Cancel this job? It is stopped at its provider; this cannot be undone.",
            objects=[] if job.is_terminal else [f"{job.pk} {job.name} ({job.status})".replace("  ", " ")],
            confirm_label="Yes, cancel the job",
            hidden=[],
            nothing_to_do=f"Job {job.pk} is {job.status}: there is nothing to cancel.",
        )

    def _cancel(self, request: HttpRequest, job: Job) -> bool:
        try:
            job_cancel(job=job, request=request)
        except (APIException, ProviderError) as exc:
            detail = exc.message if isinstance(exc, ProviderError) else exc.detail
            self.message_user(request, f"{job.pk} was not cancelled: {detail}", level=messages.WARNING)
            return False
        self.message_user(request, f"Job {job.pk} is now {job.status}.", level=messages.SUCCESS)
        return True

    @admin.action(description="Cancel selected jobs", permissions=["change"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Job]) -> HttpResponse | None:
        if not confirmed(request):
            active = [job for job in queryset if not job.is_terminal]
            return confirm_page(
                self,
                request,
                title="Cancel jobs",
                question=f"Cancel these {len(active)} job(s)? They are stopped at their providers; "
                "this cannot be undone.",
                objects=[f"{job.pk} ({job.status})" for job in active],
                confirm_label="Yes, cancel them",
                hidden=action_hidden("cancel_selected", (job.pk for job in active)),
                nothing_to_do="None of the selected jobs is active: there is nothing to cancel.",
            )
        cancelled = sum(self._cancel(request, job) for job in queryset)
        self.message_user(request, f"{cancelled} job(s) are now cancelled.")
        return None
