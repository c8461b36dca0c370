"""Notices to text: Jinja2 templates per kind and locale, stored as package data.

Template names are `<locale>/<kind>.{subject,txt,html}.j2`; every sentence of a locale is
a macro in `<locale>/_lib.j2`, which the per-kind templates compose.

Two environments: text (subject, txt) never escapes; HTML escapes everything, the imported
sentence library included. One environment with per-file autoescape is not enough: a macro
imported from a non-escaping file and called from an escaping one returns its output as
Markup, so a customer name with `<script>` would pass through unescaped.

Choosing the template (`select_template`):
- the locale is mapped to a supported one (`choose_locale`: `en-GB` reads en, `zh-HK` reads
  zh-TW); a language without templates is a RenderError on `data.locale`, never silently
  another language;
- a supported locale never borrows another's text: a kind missing there is missing;
- a kind without templates that is a stage (facts.stage names it) gets the generic `stage`;
- anything else raises RenderError, which the service turns into notice.failed + DLQ.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

import jinja2

from billstate_notifications.domain.errors import RenderError
from billstate_notifications.domain.locales import SUPPORTED_LOCALES, choose_locale
from billstate_notifications.domain.view import Formatter, build_context
from billstate_shared.contracts import NoticeRequestedData

PACKAGE = "billstate_notifications"
PARTS = ("subject", "txt", "html")
# Per template kind, whether its output is HTML and so escaped. A subject and the text part
# are plain text: escaping them would show the reader "&amp;".
ESCAPED = {"subject": False, "txt": False, "html": True}
GENERIC_STAGE = "stage"


@dataclass(frozen=True)
class Rendered:
    """A notice ready for a channel. `locale` is the template locale used, `template` the
    template kind (the notice's kind, or `stage` for the generic stage text)."""

    subject: str
    text: str
    html: str
    kind: str
    audience: str
    locale: str
    template: str
    customer_id: str | None = None


def _root() -> Traversable:
    return files(PACKAGE).joinpath("templates")


def _load(name: str) -> str | None:
    node = _root()
    for part in name.split("/"):
        if part in ("", ".", ".."):
            return None
        node = node.joinpath(part)
    return node.read_text(encoding="utf-8") if node.is_file() else None


@functools.cache
def environment(*, html: bool) -> jinja2.Environment:
    """The text or the HTML environment; templates compile once per process.

    Autoescape is decided per environment, never per file name: the HTML one escapes every
    template it loads (the imported `_lib.j2` included), the text one none.
    """
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(_load),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=(), disabled_extensions=(), default_for_string=html, default=html
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )


_BLANK_LINES = re.compile(r"\n{3,}")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")


# Spaces around full-width punctuation, left where an optional value was left out.
_CJK_SPACE = re.compile(r" +(?=[。，、：；）」])|(?<=[（「，。、：；）」]) +")


def _tidy(text: str, *, cjk: bool) -> str:
    """One blank line between paragraphs, no trailing spaces, one final newline."""
    text = _TRAILING_SPACE.sub("\n", text.replace("\r\n", "\n"))
    if cjk:
        text = _CJK_SPACE.sub("", text)
    return _BLANK_LINES.sub("\n\n", text).strip() + "\n"


@functools.cache
def available_kinds(locale: str) -> frozenset[str]:
    """Kinds with all three parts in `locale`'s template folder."""
    folder = _root().joinpath(locale)
    if not folder.is_dir():
        return frozenset()
    names = {entry.name for entry in folder.iterdir() if entry.is_file()}
    kinds = {n.split(".", 1)[0] for n in names if not n.startswith("_")}
    return frozenset(k for k in kinds if all(f"{k}.{part}.j2" in names for part in PARTS))


def select_template(kind: str, locale: str, facts_stage: object) -> tuple[str, str]:
    """(template locale, template kind) for a notice, or RenderError."""
    choice = choose_locale(locale)
    if not choice.supported:
        raise RenderError(
            "data.locale",
            f"no templates for locale {locale[:35]!r}; templates exist for "
            + ", ".join(SUPPORTED_LOCALES),
        )
    kinds = available_kinds(choice.template)
    if kind in kinds and not kind.startswith("_"):
        return choice.template, kind
    if facts_stage == kind and GENERIC_STAGE in kinds:
        return choice.template, GENERIC_STAGE
    raise RenderError(
        "data.kind",
        f"no template for kind {kind[:64]!r} in locale {choice.template}"
        " and it is not a stage (facts.stage does not name it)",
    )


def _lang(babel_locale: str) -> str:
    return babel_locale.replace("_", "-")


def render(
    notice: NoticeRequestedData, customer_name: str | None, *, customer_id: str | None = None
) -> Rendered:
    """Render one notice for its kind, audience and locale; raise RenderError if it cannot be.

    `customer_name` comes from the customer directory (None when unknown); `customer_id`
    (the envelope's) names the customer in staff notices and travels with the result.
    """
    facts_stage = notice.facts.get("stage")
    template_locale, template_kind = select_template(notice.kind, notice.locale, facts_stage)
    choice = choose_locale(notice.locale)
    fmt = Formatter(choice.babel)
    context = build_context(notice.facts, fmt)
    if customer_id is None:
        fact_id = notice.facts.get("customer_id")
        customer_id = fact_id if isinstance(fact_id, str) else None
    context.update(
        kind=notice.kind,
        stage_label=notice.kind.replace("_", " "),
        audience=notice.audience,
        lang=_lang(choice.babel),
        customer_name=customer_name,
        customer_id=customer_id,
    )
    base = f"{template_locale}/{template_kind}"
    cjk = template_locale.startswith("zh")

    def part(name: str) -> str:
        template = environment(html=ESCAPED[name]).get_template(f"{base}.{name}.j2")
        return template.render(context)

    try:
        subject = _tidy(" ".join(part("subject").split()), cjk=cjk).strip()
        context["subject"] = subject
        text = _tidy(part("txt"), cjk=cjk)
        html = _tidy(part("html"), cjk=cjk)
    except jinja2.TemplateNotFound as err:
        raise RenderError("data.kind", f"template {err.name} is missing") from None
    except jinja2.UndefinedError as err:
        raise RenderError(f"template {base}", f"undefined value: {err.message}") from None
    except jinja2.TemplateError as err:
        raise RenderError(f"template {base}", f"{type(err).__name__}: {err.message}") from None
    if not subject:
        raise RenderError(f"template {base}", "rendered an empty subject")
    return Rendered(
        subject=subject,
        text=text,
        html=html,
        kind=notice.kind,
        audience=notice.audience,
        locale=template_locale,
        template=template_kind,
        customer_id=customer_id,
    )


__all__ = [
    "GENERIC_STAGE",
    "SUPPORTED_LOCALES",
    "RenderError",
    "Rendered",
    "available_kinds",
    "render",
    "select_template",
]
