"""`billstate status` and `billstate timeline`: a customer as the console's JSON API shows it.

Both are clients of a running console (`GET /api/customers/{id}` and `.../timeline`): the
console is the read model, so the terminal shows exactly what its pages show. The token comes
from `BILLSTATE_CONSOLE_TOKEN` or `--token-file`, never from the command line (it would be in
the shell's history and in `ps`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from billstate_shared.errors import ExternalError

DEFAULT_URL = "http://127.0.0.1:8080"
URL_ENV = "BILLSTATE_CONSOLE_URL"
TOKEN_ENV = "BILLSTATE_CONSOLE_TOKEN"  # noqa: S105  (a variable's name)
UNKNOWN_EXIT = 1
FAILED_EXIT = 2
NA = "not available"


class ConsoleError(ExternalError):
    """The console could not answer: unreachable, refused the token, or failed."""

    def __init__(self, message: str, code: int = FAILED_EXIT) -> None:
        super().__init__(message, retryable=False)
        self.code = code


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file is not None:
        try:
            return Path(args.token_file).read_text().strip() or None
        except OSError as err:
            raise ConsoleError(
                f"cannot read --token-file {args.token_file}: {err.strerror}"
            ) from None
    return os.environ.get(TOKEN_ENV) or None


def fetch(base: str, path: str, token: str | None, timeout: float = 10.0) -> dict[str, Any]:
    """GET a console API document; 404 is an unknown customer (exit 1), the rest exit 2."""
    url = base.rstrip("/") + path
    if not url.startswith(("http://", "https://")):
        raise ConsoleError(f"--console must be an http:// or https:// URL, not {base!r}")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310  (scheme checked above)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            body: dict[str, Any] = json.loads(answer.read())
            return body
    except urllib.error.HTTPError as err:
        raise _refusal(err, base) from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise ConsoleError(
            f"the console at {base} is unreachable ({reason}); start it (make console) or"
            f" point --console or {URL_ENV} at it"
        ) from None
    except ValueError:
        raise ConsoleError(f"the console at {base} answered something that is not JSON") from None


def _refusal(err: urllib.error.HTTPError, base: str) -> ConsoleError:
    try:
        said = str(json.loads(err.read()).get("error", ""))
    except (ValueError, AttributeError, OSError):
        said = ""
    why = f" ({said})" if said else ""
    if err.code == 404:
        return ConsoleError(f"unknown customer: the console at {base} has no such customer", 1)
    if err.code == 401:
        return ConsoleError(
            f"401 not signed in{why}: set {TOKEN_ENV} or pass --token-file with a viewer or"
            " operator token of this console"
        )
    if err.code == 403:
        return ConsoleError(
            f"403 forbidden{why}: this identity has no console role that may read;"
            " use a viewer or operator token"
        )
    return ConsoleError(f"the console at {base} answered {err.code}{why}")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("customer", metavar="CUSTOMER", help="the customer id")
    parser.add_argument(
        "--console",
        default=os.environ.get(URL_ENV) or DEFAULT_URL,
        help=f"the console's URL (default: {URL_ENV}, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        help=f"a file holding the console token (default: {TOKEN_ENV})",
    )
    parser.add_argument("--json", action="store_true", help="print the API's document")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = sub.add_parser(
        "status", help="a customer's stage, why, balances and next step, from the console"
    )
    _common(status)
    status.set_defaults(func=_status)
    timeline = sub.add_parser(
        "timeline", help="a customer's timeline, newest first, each entry with its why"
    )
    _common(timeline)
    timeline.add_argument("--limit", type=int, default=50, help="entries to show (default 50)")
    timeline.set_defaults(func=_timeline)


def _quote(customer: str) -> str:
    return urllib.parse.quote(customer, safe="")


def _run(args: argparse.Namespace, path: str) -> dict[str, Any] | int:
    try:
        return fetch(args.console, path, _token(args))
    except ConsoleError as err:
        print(f"billstate {args.command}: {err.message}", file=sys.stderr)
        return err.code


def _status(args: argparse.Namespace) -> int:
    doc = _run(args, f"/api/customers/{_quote(args.customer)}")
    if isinstance(doc, int):
        return doc
    if args.json:
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    elif sys.stdout.isatty():
        Console().print(status_view(doc))
    else:
        print("\n".join(status_lines(doc)))
    return 0


def _timeline(args: argparse.Namespace) -> int:
    if args.limit < 1:
        print("billstate timeline: --limit must be at least 1", file=sys.stderr)
        return FAILED_EXIT
    doc = _run(args, f"/api/customers/{_quote(args.customer)}/timeline")
    if isinstance(doc, int):
        return doc
    doc = {**doc, "items": list(doc.get("items") or [])[: args.limit]}
    if args.json:
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    elif sys.stdout.isatty():
        Console().print(timeline_view(doc))
    else:
        print("\n".join(timeline_lines(doc)))
    return 0


# The view, once, as sections; rich tables on a terminal, plain lines elsewhere.


@dataclass
class Section:
    title: str
    lines: list[str] = field(default_factory=list)  # key-value lines or a sentence
    headers: tuple[str, ...] = ()
    rows: list[tuple[str, ...]] = field(default_factory=list)
    empty: str = "none"


def _text(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value) or "-"
    return str(value)


def _money(items: Any) -> str:
    if not items:
        return "nothing"
    return ", ".join(f"{m.get('currency', '?')} {m.get('amount', '?')}" for m in items)


def _next_step(doc: dict[str, Any]) -> str:
    if "next_step" in doc:
        step = doc["next_step"]
        if not step:
            return "none scheduled"
        if step.get("text"):
            return str(step["text"])
        unless = f" unless {_money(step['unless'])} is paid" if step.get("unless") else ""
        return f"{step.get('stage', '?')} on {step.get('on', '?')}{unless}"
    # Before the console knew the plan's next step: the state's next stage and its date.
    nxt = doc.get("next")
    if not nxt:
        return "none scheduled"
    return f"{nxt.get('stage', '?')} on {nxt.get('on') or 'a date not set yet'}"


def sections(doc: dict[str, Any]) -> list[Section]:
    """A customer document in sections; a key the console does not send is 'not available'."""
    name = f" ({doc['name']})" if doc.get("name") else ""
    since = f" since {doc['since']}" if doc.get("since") else ""
    head = Section(
        f"{doc.get('customer_id', '?')}{name}",
        [
            f"stage: {doc.get('stage') or '?'}{since}",
            f"business date: {_text(doc.get('as_of'))}",
            f"locale: {_text(doc.get('locale'))}; tags: {_text(doc.get('tags'))}",
        ],
    )
    if doc.get("policy"):
        head.lines.append(f"policy: {doc['policy'].get('name')} v{doc['policy'].get('version')}")
    why = doc.get("why")
    rule = f" [{doc['why_rule']}]" if doc.get("why_rule") else ""
    found = [head, Section("Why", [f"{why}{rule}" if why else "no decision yet"])]
    found.extend(_balances(doc))
    found.append(_exposure(doc))
    found.append(
        _table(
            doc,
            "holds",
            "Holds",
            ("hold", "kind", "invoice", "amount", "until", "reason", "by", "placed"),
            ("hold_id", "kind", "invoice_id", "amount", "until", "reason", "by", "placed_on"),
        )
    )
    found.append(
        _table(
            doc,
            "pending_payments",
            "Pending payments",
            ("payment", "amount", "currency", "expected by"),
            ("payment_id", "amount", "currency", "expected_by"),
        )
    )
    found.append(
        _table(
            doc,
            "subscriptions",
            "Subscriptions",
            ("subscription", "access", "provider", "at", "detail"),
            ("subscription_id", "access", "provider", "at", "detail"),
        )
    )
    nxt = Section("Next step", [_next_step(doc)])
    if doc.get("waiting"):
        nxt.lines.append(f"waiting for: {doc['waiting']}")
    found.append(nxt)
    return found


def _table(
    doc: dict[str, Any], key: str, title: str, headers: tuple[str, ...], keys: tuple[str, ...]
) -> Section:
    if key not in doc:
        return Section(title, [NA])
    rows = [
        tuple(_when(item.get(k)) if k == "at" else _text(item.get(k)) for k in keys)
        for item in doc[key] or []
    ]
    return Section(title, headers=headers, rows=rows)


def _when(value: Any) -> str:
    """A UTC time to the minute ("2026-02-23 01:00Z"): the seconds only widen the table."""
    text = _text(value)
    if len(text) >= 16 and text[10] == "T":
        return f"{text[:10]} {text[11:16]}Z"
    return text


def _exposure(doc: dict[str, Any]) -> Section:
    """What Microsoft has billed the partner for the periods the customer has not paid for."""
    title = "Exposure to Microsoft"
    if "exposure" not in doc:
        return Section(title, [NA])
    return Section(title, [_money(doc["exposure"]) if doc["exposure"] else "none"])


def _balances(doc: dict[str, Any]) -> list[Section]:
    if "balances" not in doc:
        overdue = doc.get("overdue") or []
        days = doc.get("days_past_due")
        late = f" ({days} days past due)" if days else ""
        return [Section("Balances", [f"overdue: {_money(overdue)}{late}", f"open invoices: {NA}"])]
    if not doc["balances"]:
        return [Section("Balances", ["nothing open"])]
    found = []
    for balance in doc["balances"]:
        cur = balance.get("currency", "?")
        keys = ("invoice_id", "issued_on", "due_on", "amount", "open", "disputed", "days_past_due")
        rows = [tuple(_text(i.get(k)) for k in keys) for i in balance.get("invoices") or []]
        sums = ", ".join(f"{k} {_text(balance.get(k))}" for k in ("overdue", "open", "credit"))
        found.append(
            Section(
                f"{cur} balance: {sums}",
                headers=("invoice", "issued", "due", "amount", "open", "disputed", "days late"),
                rows=rows,
                empty="no open invoices",
            )
        )
    return found


def status_lines(doc: dict[str, Any]) -> list[str]:
    """The status view as plain text (stdout is not a terminal)."""
    out: list[str] = []
    for section in sections(doc):
        out.append(section.title)
        out.extend(f"  {line}" for line in section.lines)
        if section.headers:
            out.extend(_aligned(section.headers, section.rows) if section.rows else [])
            if not section.rows:
                out.append(f"  {section.empty}")
        out.append("")
    return out[:-1]


def _aligned(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    return [
        "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]


def status_view(doc: dict[str, Any]) -> RenderableType:
    """The status view for a terminal: the same sections, as rich tables."""
    parts: list[RenderableType] = []
    for n, section in enumerate(sections(doc)):
        parts.append(Text(section.title, style="bold underline" if n == 0 else "bold"))
        parts.extend(Text("  " + line, style=_style(section, line)) for line in section.lines)
        if section.headers:
            if not section.rows:
                parts.append(Text(f"  {section.empty}", style="dim"))
            else:
                table = Table(
                    box=box.SIMPLE_HEAD,
                    padding=(0, 1),
                    pad_edge=False,
                    collapse_padding=True,
                    show_edge=False,
                )
                for header in section.headers:
                    # Ids, dates and amounts whole on one line; free text wraps.
                    table.add_column(
                        header,
                        justify="right" if _numeric(header) else "left",
                        no_wrap=header not in {"reason", "detail"},
                    )
                for row in section.rows:
                    table.add_row(*row)
                parts.append(Padding(table, (0, 0, 0, 2)))
        parts.append(Text(""))
    return Group(*parts)


def _numeric(header: str) -> bool:
    return header in {"amount", "open", "disputed", "days late"}


def _style(section: Section, line: str) -> str:
    if line == NA:
        return "dim"
    if section.title == "Next step":
        return "bold yellow"
    if line.startswith("stage: "):
        return "bold"
    return ""


def timeline_lines(doc: dict[str, Any]) -> list[str]:
    """The timeline as plain text: one line per entry, its why indented below."""
    items = doc.get("items") or []
    out = [f"{doc.get('customer_id', '?')}: {len(items)} entries, newest first"]
    for item in items:
        out.append(
            f"{_text(item.get('occurred_at'))}  {_text(item.get('kind')):<8}"
            f"  {_text(item.get('event_type'))}: {_text(item.get('summary'))}"
        )
        if item.get("why"):
            out.append(f"    why: {item['why']}")
    return out


def timeline_view(doc: dict[str, Any]) -> RenderableType:
    items = doc.get("items") or []
    table = Table(
        title=f"{doc.get('customer_id', '?')}: {len(items)} entries, newest first",
        box=box.SIMPLE_HEAD,
        show_lines=False,
    )
    for header in ("when (UTC)", "kind", "event", "what and why"):
        table.add_column(header, overflow="fold")
    for item in items:
        what = Text(_text(item.get("summary")))
        if item.get("why"):
            what.append("\n" + str(item["why"]), style="dim")
        table.add_row(
            _text(item.get("occurred_at")), _text(item.get("kind")), _text(item.get("event_type")),
            what,
        )  # fmt: skip
    return table
