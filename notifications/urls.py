"""URL routes of this app, included from cloudops/urls.py."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from notifications import views

P = "api/cloud/notifications"

urlpatterns: list[URLPattern | URLResolver] = [
    path(f"{P}/channels", views.ChannelListView.as_view(), name="notification-channels"),
    path(f"{P}/channels/<id:channel_id>", views.ChannelDetailView.as_view(), name="notification-channel"),
    path(f"{P}/channels/<id:channel_id>/rotate-secret", views.ChannelRotateView.as_view(), name="notification-rotate"),
    path(f"{P}/channels/<id:channel_id>/test", views.ChannelTestView.as_view(), name="notification-test"),
    path(f"{P}/subscriptions", views.SubscriptionListView.as_view(), name="notification-subscriptions"),
    path(
        f"{P}/subscriptions/<id:channel_id>", views.SubscriptionDetailView.as_view(), name="notification-subscription"
    ),
    path(
        f"{P}/subscriptions/<id:channel_id>/rotate-secret",
        views.ChannelRotateView.as_view(),
        name="notification-subscription-rotate",
    ),
    path(f"{P}/subscriptions/<id:channel_id>/test", views.ChannelTestView.as_view(), name="notification-sub-test"),
    path(f"{P}/deliveries", views.DeliveryListView.as_view(), name="notification-deliveries"),
    path(f"{P}/deliveries/<id:delivery_id>", views.DeliveryDetailView.as_view(), name="notification-delivery"),
    path(
        f"{P}/deliveries/<id:delivery_id>/redeliver",
        views.DeliveryRedeliverView.as_view(),
        name="notification-redeliver",
    ),
]
