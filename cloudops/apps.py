from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class CloudopsConfig(AppConfig):
    name = "cloudops"
    verbose_name = "Access"

    def ready(self) -> None:
        from django.contrib.auth import signals

        from cloudops import accounts

        # Every login, logout and failed login is audited here, whichever form it came through.
        signals.user_login_failed.connect(accounts.audit_login_failed, dispatch_uid="cloudops.audit_login_failed")
        signals.user_logged_in.connect(accounts.audit_login_success, dispatch_uid="cloudops.audit_login_success")
        signals.user_logged_out.connect(accounts.audit_logout, dispatch_uid="cloudops.audit_logout")


class AdminConfig(admin_apps.AdminConfig):
    """Django's admin app with our site (INSTALLED_APPS lists this instead of django.contrib.admin)."""

    # Not the default configuration of the `cloudops` package: CloudopsConfig is.
    default = False
    default_site = "cloudops.admin_site.CloudopsAdminSite"
