"""Which template locale and which formatting locale a requested BCP 47 tag gets."""

from __future__ import annotations

from dataclasses import dataclass

from babel import Locale, UnknownLocaleError

SUPPORTED_LOCALES: tuple[str, ...] = ("en", "zh-TW")
FALLBACK_LOCALE = "en"


@dataclass(frozen=True)
class LocaleChoice:
    """`template`: the template folder (a supported locale); `babel`: how amounts and dates
    are formatted (the requested locale when it speaks the template's language, so `en-GB`
    reads "21 November 2026"); `supported`: whether the request itself was supported."""

    template: str
    babel: str
    supported: bool


def choose_locale(tag: str) -> LocaleChoice:
    """`en*` -> en; Traditional Chinese (`zh-TW`, `zh-HK`, `zh-Hant*`) -> zh-TW; anything
    else (unknown, Simplified Chinese, malformed) is unsupported and falls back to en."""
    try:
        parsed = Locale.parse(tag.replace("_", "-"), sep="-")
    except (UnknownLocaleError, ValueError, TypeError):
        return LocaleChoice(FALLBACK_LOCALE, FALLBACK_LOCALE, supported=False)
    if parsed.language == "en":
        return LocaleChoice("en", str(parsed), supported=True)
    if parsed.language == "zh" and parsed.script == "Hant":
        return LocaleChoice("zh-TW", str(parsed), supported=True)
    return LocaleChoice(FALLBACK_LOCALE, FALLBACK_LOCALE, supported=False)
