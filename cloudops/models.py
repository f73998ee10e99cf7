from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiKey(models.Model):
    """A user's API key.

    The full key (`<prefix>_<secret>`) is shown once at creation. The row keeps the visible
    prefix (also the S3 access key id), a salt and the SHA-256 of the full key. The secret is
    HMAC(server key, prefix, salt), so the server can recompute it to verify S3 signatures
    while the database alone reveals nothing usable. SHA-256 rather than a slow password
    hash is deliberate: keys carry 256 random bits, and every API request checks one.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    salt = models.CharField(max_length=32)
    key_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
