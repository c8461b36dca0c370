"""One error root, `BillstateError`, and the three kinds a caller tells apart."""

from __future__ import annotations

from typing import Any


class BillstateError(Exception):
    """Every error billstate raises on purpose derives from this one."""


class Refused(BillstateError, ValueError):  # noqa: N818  (a kind of outcome, not a bug)
    """Input that is wrong in itself: trying again cannot help.

    `field` is the dotted path of the culprit (`data.amount`, `key`, `--until`), or `$` for the
    input as a whole; `reason` says why in words and never quotes the value, so it is safe in
    logs and dead-letter headers. A refused record goes to its topic's DLQ; a refused command
    line is an error message and exit status 2. `event_type` is the record's, when known.
    """

    def __init__(self, field: str, reason: str, event_type: str | None = None) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason, self.event_type = field, reason, event_type

    def __reduce__(self) -> tuple[Any, ...]:
        # The default reduce replays self.args, which holds only the joined message.
        return (type(self), (self.field, self.reason, self.event_type))


class ConfigRefused(Refused):
    """A setting, policy file or mapping file refused at start-up: nothing starts."""


class ExternalError(BillstateError):
    """A call to the outside (a provider, a channel, a webhook) did not succeed.

    `retryable`: whether the same call may succeed later (a timeout, a 429, a 5xx) or never
    will (a 404, a refused recipient). `retry_after` is the wait in seconds the far side asked
    for, honoured by the retry policy up to its ceiling. `message` goes into events and DLQ
    reasons, so it never carries an address or a secret.
    """

    def __init__(
        self, message: str, *, retryable: bool = True, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable, self.message, self.retry_after = retryable, message, retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _external,
            (
                type(self),
                self.message,
                {"retryable": self.retryable, "retry_after": self.retry_after},
            ),
        )


def _external(kind: type[ExternalError], message: str, options: dict[str, Any]) -> ExternalError:
    """Unpickle an ExternalError (its keyword-only arguments do not fit `__reduce__`'s args)."""
    return kind(message, **options)
