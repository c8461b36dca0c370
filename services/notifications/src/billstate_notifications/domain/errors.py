"""The one error the pure core raises: a notice that cannot be rendered."""

from __future__ import annotations

from billstate_shared.errors import Refused


class RenderError(Refused):
    """A notice that cannot be rendered: no template for its kind, or facts of the wrong shape.

    `RenderError(field, reason)`: `field` is the dotted path of the culprit (`data.kind`,
    `data.facts.suspension_on`); `reason` never quotes fact values, so it is safe for logs,
    delivery events and the DLQ.
    """
