"""Notifications API: channels (staff with the channel permissions), a user's own
subscriptions, and the delivery log. Parse, call one service, serialize."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cloudops.permissions import StaffPermission, has_staff_perm, request_user
from notifications.models import Channel, Delivery, DeliveryAttempt
from notifications.serializers import (
    ChannelBodySerializer,
    ChannelCreatedSerializer,
    ChannelCreateSerializer,
    ChannelListBodySerializer,
    ChannelPatchSerializer,
    DeliveryBodySerializer,
    DeliveryListBodySerializer,
    DeliveryQuerySerializer,
    SecretBodySerializer,
    SubscriptionInputSerializer,
)
from notifications.services import (
    SubscriptionRefused,
    channel_create,
    channel_delete,
    channel_rotate_secret,
    channel_send_test,
    channel_update,
    delivery_redeliver,
    subscription_create,
)

ChannelAdmin = StaffPermission.of(view="notifications.view_channel", change="notifications.change_channel")


def _created(channel: Channel, secret: str) -> Response:
    return Response(ChannelCreatedSerializer({"channel": channel, "secret": secret}).data, status.HTTP_201_CREATED)


class ChannelListView(APIView):
    """GET: the operators' channels. POST: a new one (a webhook's secret is in this answer only)."""

    permission_classes = [ChannelAdmin]

    @extend_schema(operation_id="notification_channels_list", responses={200: ChannelListBodySerializer})
    def get(self, request: Request) -> Response:
        channels = list(Channel.objects.filter(owner__isnull=True))
        return Response(ChannelListBodySerializer({"channels": channels, "total": len(channels)}).data)

    @extend_schema(request=ChannelCreateSerializer, responses={201: ChannelCreatedSerializer})
    def post(self, request: Request) -> Response:
        data = ChannelCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        created = channel_create(values=data.validated_data, request=request)
        return _created(created.channel, created.secret)


class ChannelDetailView(APIView):
    """One channel: GET, PATCH (the fields sent), DELETE."""

    permission_classes = [ChannelAdmin]

    def _channel(self, channel_id: int) -> Channel:
        return get_object_or_404(Channel, pk=channel_id, owner__isnull=True)

    @extend_schema(responses={200: ChannelBodySerializer})
    def get(self, request: Request, channel_id: int) -> Response:
        return Response(ChannelBodySerializer({"channel": self._channel(channel_id)}).data)

    @extend_schema(request=ChannelPatchSerializer, responses={200: ChannelBodySerializer})
    def patch(self, request: Request, channel_id: int) -> Response:
        channel = self._channel(channel_id)
        data = ChannelPatchSerializer(channel, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        channel = channel_update(channel=channel, changes=data.validated_data, request=request)
        return Response(ChannelBodySerializer({"channel": channel}).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, channel_id: int) -> Response:
        channel_delete(channel=self._channel(channel_id), request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _own_or_admin_channel(request: Request, channel_id: int) -> Channel:
    """A channel the caller may act on: any, with the change permission; else their own."""
    user = request_user(request)
    if has_staff_perm(user, "notifications.change_channel"):
        return get_object_or_404(Channel, pk=channel_id)
    return get_object_or_404(Channel, pk=channel_id, owner=user)


class ChannelRotateView(APIView):
    """POST: a new signing secret (in this answer only); the old one signs too for the grace period."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={200: SecretBodySerializer})
    def post(self, request: Request, channel_id: int) -> Response:
        channel = _own_or_admin_channel(request, channel_id)
        secret = channel_rotate_secret(channel=channel, request=request)
        body = {"secret": secret, "previous_secret_valid_until": channel.previous_secret_expires_at}
        return Response(SecretBodySerializer(body).data)


class ChannelTestView(APIView):
    """POST: queue a `test` event for the channel (sent by the worker; see the delivery log)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={202: DeliveryBodySerializer})
    def post(self, request: Request, channel_id: int) -> Response:
        delivery = channel_send_test(channel=_own_or_admin_channel(request, channel_id), request=request)
        return Response(DeliveryBodySerializer({"delivery": delivery}).data, status=status.HTTP_202_ACCEPTED)


class SubscriptionListView(APIView):
    """GET: the caller's subscriptions. POST: subscribe to their own jobs' events."""

    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="notification_subscriptions_list", responses={200: ChannelListBodySerializer})
    def get(self, request: Request) -> Response:
        channels = list(Channel.objects.filter(owner=request_user(request)))
        return Response(ChannelListBodySerializer({"channels": channels, "total": len(channels)}).data)

    @extend_schema(request=SubscriptionInputSerializer, responses={201: ChannelCreatedSerializer})
    def post(self, request: Request) -> Response:
        user = request_user(request)
        data = SubscriptionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            created = subscription_create(values=dict(data.validated_data), owner=user, request=request)
        except SubscriptionRefused as exc:
            return Response({"detail": str(exc)}, status.HTTP_400_BAD_REQUEST)
        return _created(created.channel, created.secret)


class SubscriptionDetailView(APIView):
    """DELETE: unsubscribe."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={204: None})
    def delete(self, request: Request, channel_id: int) -> Response:
        channel = get_object_or_404(Channel, pk=channel_id, owner=request_user(request))
        channel_delete(channel=channel, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _visible_deliveries(request: Request) -> QuerySet[Delivery]:
    rows = Delivery.objects.prefetch_related(Prefetch("attempt_log", queryset=DeliveryAttempt.objects.order_by("id")))
    user = request_user(request)
    if has_staff_perm(user, "notifications.view_delivery"):
        return rows
    return rows.filter(channel__owner=user)


class DeliveryListView(APIView):
    """GET ?channel=&status=&event=&limit=: deliveries, newest first, each with its attempts.
    Staff with the delivery permission see all; others, their subscriptions'."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="notification_deliveries_list",
        parameters=[DeliveryQuerySerializer],
        responses={200: DeliveryListBodySerializer},
    )
    def get(self, request: Request) -> Response:
        # A plain dict: DRF would skip a blank `?status=` of a QueryDict instead of refusing it.
        query = DeliveryQuerySerializer(data=dict(request.query_params.items()))
        query.is_valid(raise_exception=True)
        wanted = query.validated_data
        rows = _visible_deliveries(request)
        if "channel" in wanted:
            rows = rows.filter(channel_id=wanted["channel"])
        if "status" in wanted:
            rows = rows.filter(status=wanted["status"])
        if "event" in wanted:
            rows = rows.filter(event_type=wanted["event"])
        found = list(rows.order_by("-id")[: wanted["limit"]])
        return Response(DeliveryListBodySerializer({"deliveries": found, "total": len(found)}).data)


class DeliveryDetailView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="notification_delivery_retrieve", responses={200: DeliveryBodySerializer})
    def get(self, request: Request, delivery_id: int) -> Response:
        delivery = get_object_or_404(_visible_deliveries(request), pk=delivery_id)
        return Response(DeliveryBodySerializer({"delivery": delivery}).data)


class DeliveryRedeliverView(APIView):
    """POST: send the delivery again now, under the same webhook-id."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={202: DeliveryBodySerializer})
    def post(self, request: Request, delivery_id: int) -> Response:
        delivery = get_object_or_404(_visible_deliveries(request), pk=delivery_id)
        user = request_user(request)
        if delivery.channel.owner_id != user.pk and not has_staff_perm(user, "notifications.change_delivery"):
            return Response(
                {"detail": "Staff status and the notifications.change_delivery permission are required."},
                status.HTTP_403_FORBIDDEN,
            )
        delivery = delivery_redeliver(delivery=delivery, request=request)
        return Response(DeliveryBodySerializer({"delivery": delivery}).data, status=status.HTTP_202_ACCEPTED)
