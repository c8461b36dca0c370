"""The one error the pure core raises: a notice that cannot be rendered."""

from __future__ import annotations


class RenderError(Exception):
    """A notice that cannot be rendered: no template for its kind, or facts of the wrong shape.

    `field` is the dotted path of the culprit (`data.kind`, `data.facts.suspension_on`);
    `reason` never quotes fact values, so it is safe for logs, delivery events and the DLQ.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason
