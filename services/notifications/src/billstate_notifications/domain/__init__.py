"""Pure core of notifications: frozen values and functions, no I/O, no clock, no logging.

(Templates are package data read through importlib.resources; reading them is the only
file access here, and it is read-only and deterministic.)
"""

from billstate_notifications.domain.errors import RenderError
from billstate_notifications.domain.locales import (
    FALLBACK_LOCALE,
    SUPPORTED_LOCALES,
    LocaleChoice,
    choose_locale,
)
from billstate_notifications.domain.rendering import Rendered, available_kinds, render
from billstate_notifications.domain.staff import STAFF_KINDS, staff_notice

__all__ = [
    "FALLBACK_LOCALE",
    "STAFF_KINDS",
    "SUPPORTED_LOCALES",
    "LocaleChoice",
    "RenderError",
    "Rendered",
    "available_kinds",
    "choose_locale",
    "render",
    "staff_notice",
]
