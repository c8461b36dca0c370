"""structlog set up once: JSON off a TTY, contextvars, stdlib routed through, secrets redacted."""

from __future__ import annotations

import datetime as dt
import inspect
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# In logs, every character RFC 5322 allows in a local part (`{o'brien}@x.example`).
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
SECRET_KEYS = re.compile(
    r"(?i)(password|passwd|secret|token|authorization|api[_-]?key|signing[_-]?key|credential)"
)
REDACTED = "[redacted]"

# Values that cannot carry text go out as they are.
_INERT: frozenset[type] = frozenset(
    {int, float, bool, type(None), Decimal, dt.datetime, dt.date, dt.time, dt.timedelta}
)
# Key names repeat from line to line: decide each once. Bounded, as keys may come from data.
_KEYS: dict[Any, bool] = {}
_KEYS_MAX = 4096


def _secret(key: Any) -> bool:
    hit = _KEYS.get(key)
    if hit is None:
        hit = SECRET_KEYS.search(str(key)) is not None
        if len(_KEYS) < _KEYS_MAX:
            _KEYS[key] = hit
    return hit


def _text(s: str) -> str:
    # The regexes only where their literal part is present: an "@", a "bearer" or "basic".
    # An ASCII string matches (?i) only by its ASCII lower case; others take the regex.
    if "@" in s:
        s = _ADDRESS.sub("[email]", s)
    if not s.isascii() or "bearer" in (low := s.lower()) or "basic" in low:
        s = BEARER.sub(r"\1 " + REDACTED, s)
    return s


def _scrub(value: Any) -> Any:
    kind = type(value)
    if kind is str:
        return _text(value)
    if kind in _INERT or isinstance(value, int | float):  # IntEnum and friends: numbers
        return value
    if isinstance(value, Mapping):
        return {k: REDACTED if _secret(k) else _scrub(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return kind(_scrub(v) for v in value)
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    # str subclasses by their text; anything else by its repr, which the renderer would print.
    return _text(str(value) if isinstance(value, str) else repr(value))


def redact(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Drop secrets by key and email addresses and bearer tokens by shape, at any depth."""
    clean = dict(event_dict)
    record = clean.pop("_record", None)  # the stdlib's record, for ProcessorFormatter
    _clean(clean)
    if record is not None:
        clean["_record"] = record
    return clean


def _exc(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    event_dict = structlog.processors.format_exc_info(logger, method, event_dict)
    return structlog.processors.StackInfoRenderer()(logger, method, event_dict)


_LEVELS = {"warn": "warning", "exception": "error"}
# structlog's context variables by key, to read only those (merge_contextvars walks every
# variable of the context); its documented processor where that private table is missing.
_VARS: dict[str, Any] | None = getattr(structlog.contextvars, "_CONTEXT_VARS", None)
_PREFIX = len(structlog.contextvars.STRUCTLOG_KEY_PREFIX)
_named: list[tuple[str, Any]] = []


def _context() -> list[tuple[str, Any]]:
    """(key, variable) of each context variable bound so far; rebuilt when one is added."""
    global _named  # noqa: PLW0603
    if _VARS is not None and len(_named) != len(_VARS):
        _named = [(k[_PREFIX:], var) for k, var in list(_VARS.items())]
    return _named


def _clean(ed: EventDict) -> None:
    """`redact`, in place, on a dict of our own (top level only: nested ones are copied)."""
    for key, value in ed.items():  # replaces values only: the size stays
        hit = _KEYS.get(key)
        if hit is None:
            hit = _secret(key)
        if hit:
            ed[key] = REDACTED
        elif type(value) is str:
            # _text's preconditions, inlined: most values have no "@" and no "b".
            if (
                "@" in value
                or not value.isascii()
                or (
                    ("b" in value or "B" in value)
                    and ("bearer" in (low := value.lower()) or "basic" in low)
                )
            ):
                ed[key] = _text(value)
        elif type(value) not in _INERT:
            ed[key] = _scrub(value)


def _merge(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """`merge_contextvars`, reading structlog's variables only, in the order they were bound."""
    if _VARS is None:
        return structlog.contextvars.merge_contextvars(logger, method, event_dict)
    for key, var in _context():
        value = var.get()
        if value is not Ellipsis and key not in event_dict:
            event_dict[key] = value
    return event_dict


def _render(logger: WrappedLogger, method: str, event_dict: EventDict) -> bytes:
    """Our own lines' processors in one pass: context, redaction, level, logger, time, JSON.

    The keys come out as `foreign`'s do: the call's, the bound context's, then level, logger
    and timestamp (those three are ours, so not scanned).
    """
    ed = event_dict
    if "exc_info" in ed or "stack_info" in ed:
        ed = _exc(logger, method, ed)
    ed = _merge(logger, method, ed)
    _clean(ed)
    ed["level"] = _LEVELS.get(method, method)
    ed["logger"] = logger.name
    ed["timestamp"] = _timestamp()
    try:
        line = orjson.dumps(ed, default=repr)
    except TypeError:
        line = _dumps(ed)
    return line if line.isascii() else _unbroken(line)


def _unbroken(line: bytes) -> bytes:
    """Escape the characters `str.splitlines` breaks at that JSON leaves raw (NEL, LS, PS)."""
    for raw, escaped in _BREAKS:
        line = line.replace(raw, escaped)
    return line


_BREAKS = [(c.encode(), f"\\u{ord(c):04x}".encode()) for c in "\x85\u2028\u2029"]


def _stamp(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    event_dict["timestamp"] = _timestamp()
    return event_dict


_second: tuple[int, str] = (0, "")


def _timestamp() -> str:
    """Now in UTC, ISO 8601 to the microsecond: `2026-11-25T14:52:33.488216Z`.

    The date and time of day are formatted once a second (`datetime.isoformat` costs more
    than the rest of a line).
    """
    global _second  # noqa: PLW0603
    sec, ns = divmod(time.time_ns(), 1_000_000_000)
    head = _second
    if head[0] != sec:
        head = _second = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    return f"{head[1]}.{ns // 1000:06d}Z"


def _dumps(event_dict: EventDict) -> bytes:
    try:
        return orjson.dumps(event_dict, default=repr, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        # Keys orjson refuses, strings with lone surrogates: the stdlib copes (a log call
        # must never raise).
        text = json.dumps(event_dict, default=repr, skipkeys=True)
        return text.encode("utf-8", "backslashreplace")


def _json_text(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> str:
    return _unbroken(_dumps(event_dict)).decode("utf-8")


def _sink(stream: TextIO) -> tuple[Callable[[bytes], Any], Callable[[], Any]]:
    """(write, flush) of a line's bytes: to the stream's buffer if it has one, else decoded."""
    raw = getattr(stream, "buffer", None)
    if raw is not None:
        stream.flush()  # what was written as text goes first
        return raw.write, raw.flush
    text = stream.write
    return (lambda b: text(b.decode("utf-8"))), stream.flush


def _nowhere(_b: bytes | None = None) -> None:
    return None


# Where our lines go (set by configure_logging), read at each line: loggers cached on first
# use follow a reconfiguration, as the stdlib's handlers do.
_out: tuple[Callable[[bytes], Any], Callable[[], Any]] = (_nowhere, _nowhere)


class Line:
    """structlog's wrapped logger: one JSON line per call, named like a stdlib logger."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def msg(self, message: bytes) -> None:
        # One write of the whole line: buffered streams lock it themselves, so threads' lines
        # do not mix; flushed at once, as the stdlib handler does.
        write, flush = _out
        try:
            write(message + b"\n")
            flush()
        except (OSError, ValueError):  # a closed or broken stream: logging must not raise
            pass

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def _caller() -> str:
    """The module that asked for a nameless logger (what `logging.getLogger` would name)."""
    ours = ("structlog", __name__)
    frame = inspect.currentframe()
    while frame is not None and frame.f_globals.get("__name__", "").startswith(ours):
        frame = frame.f_back
    return "?" if frame is None else str(frame.f_globals.get("__name__", "?"))


def _line(*args: Any) -> Line:
    """structlog's logger factory: `get_logger(name)` -> a `Line` named `name`."""
    return Line(str(args[0]) if args else _caller())


def _filtering(level: int) -> type[Any]:
    """structlog's filtering bound logger for `level`, its lines handed to `_render` directly.

    Below `level` a method is structlog's no-op; at or above it, `_proxy_to_logger` builds the
    event dict as structlog's `_process_event` does (bound values, the call's, `event`) and
    skips only the generic chain loop and its result checks: `_render` is the whole chain.
    """
    base: Any = structlog.make_filtering_bound_logger(level)

    class Logger(base):  # type: ignore[misc]
        def _proxy_to_logger(
            self, method_name: str, event: str | None = None, **event_kw: Any
        ) -> None:
            ed = {**self._context, **event_kw} if self._context else event_kw
            if event is not None:
                ed["event"] = event
            self._logger.msg(_render(self._logger, method_name, ed))

    return Logger


def configure_logging(
    service: str,
    level: str = "INFO",
    fmt: str = "auto",
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and the stdlib root logger; call once at process start."""
    stream = stream or sys.stderr
    json_out = fmt == "json" or (fmt == "auto" and not stream.isatty())
    # Libraries' records (faust, aiokafka, ...) come through the stdlib; they are rare.
    foreign: list[Processor] = [
        _merge,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _stamp,
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redact,
    ]
    renderer: Processor = _json_text if json_out else structlog.dev.ConsoleRenderer(colors=False)
    if json_out:
        global _out  # noqa: PLW0603
        _out = _sink(stream)
        # Our own lines skip the stdlib: a level filter that makes a dropped line a no-op,
        # then straight to orjson and one write. Same keys, in the same order, as `foreign`.
        structlog.configure(
            processors=[_render],
            logger_factory=_line,
            wrapper_class=_filtering(logging.getLevelNamesMapping()[level.upper()]),
            cache_logger_on_first_use=True,
        )
    else:
        structlog.configure(
            processors=[
                structlog.stdlib.filter_by_level,
                *foreign,
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=True,
        )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=foreign,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)
