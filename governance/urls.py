"""URL routes of this app, included from cloudops/urls.py."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from governance import quota_views, views

urlpatterns: list[URLPattern | URLResolver] = [
    path("api/approvals/rules", views.ApprovalRuleListView.as_view(), name="approval-rules"),
    path("api/approvals/rules/<id:rule_id>", views.ApprovalRuleDetailView.as_view(), name="approval-rule-detail"),
    path("api/approvals/requests", views.ApprovalRequestListView.as_view(), name="approval-requests"),
    path(
        "api/approvals/requests/<id:request_id>/approve", views.ApprovalApproveView.as_view(), name="approval-approve"
    ),
    path("api/quotas", quota_views.QuotaListAliasView.as_view()),
    path("api/quotas/", quota_views.QuotaListView.as_view(), name="quotas"),
    path("api/quotas/<id:quota_id>", quota_views.QuotaDetailView.as_view(), name="quota-detail"),
    path("api/approvals/requests/<id:request_id>/reject", views.ApprovalRejectView.as_view(), name="approval-reject"),
]
