"""Delivery channels: how a rendered notice leaves the service."""

from billstate_notifications.channels.base import Audience, Channel, ChannelError
from billstate_notifications.channels.outbox import OutboxChannel

__all__ = ["Audience", "Channel", "ChannelError", "OutboxChannel"]
