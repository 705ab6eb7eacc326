"""Customer messages and pages from Jinja2 templates per language (config/templates/<lang>/).

A message is two files: `<id>.txt` (first line `Subject: ...`, a blank line, the plain-text body)
and `<id>.html` (the HTML part, autoescaped: text a customer typed never renders as markup).
`strings.toml` per language holds the short texts several templates share (reason codes, form
labels); the customer pages under `pages/` take all their words from it. Money and dates are formatted with Babel for the message's language.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).resolve().parent / "templates"


class TemplateMissing(LookupError):
    pass


@dataclass(frozen=True)
class RenderedMessage:
    template: str
    language: str
    subject: str
    text: str
    html: str


@lru_cache(maxsize=None)
def environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), undefined=StrictUndefined,
                      autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["money"] = _money
    env.filters["when"] = _when
    env.filters["day"] = _day
    env.filters["address_lines"] = address_lines
    return env


@lru_cache(maxsize=None)
def strings(language: str) -> dict[str, Any]:
    path = TEMPLATES / language / "strings.toml"
    if not path.exists():
        raise TemplateMissing(f"no strings for language {language!r} ({path})")
    return tomllib.loads(path.read_text(encoding="utf-8"))


def _money(amount: Any, currency: str, language: str) -> str:
    from babel.numbers import format_currency

    return format_currency(Decimal(str(amount)), currency, locale=language)


def _when(moment: datetime | str, language: str, tz: str = "UTC") -> str:
    from babel.dates import format_datetime, get_timezone

    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return format_datetime(moment, "long", tzinfo=get_timezone(tz), locale=language)


def _day(value: date | str, language: str) -> str:
    """A calendar day in the customer's language (`2026-12-10` -> `10 décembre 2026`)."""
    from babel.dates import format_date

    return format_date(date.fromisoformat(value[:10]) if isinstance(value, str) else value, "long", locale=language)


def address_lines(a: dict[str, Any] | None) -> list[str]:
    """A Shopify-shaped address as the lines a label would show."""
    a = a or {}
    place = " ".join(str(a[k]) for k in ("zip", "city", "province_code") if a.get(k))
    return [str(a[k]) for k in ("name", "address1", "address2") if a.get(k)] + ([place] if place else []) + (
        [str(a["country_code"])] if a.get("country_code") else [])


def _template(name: str):
    from jinja2 import TemplateNotFound

    try:
        return environment().get_template(name)
    except TemplateNotFound as exc:
        raise TemplateMissing(f"template {name} is missing") from exc


def render(template: str, language: str, context: dict[str, Any]) -> RenderedMessage:
    """Render message `template` in `language`; a missing file or variable raises (never sends half)."""
    ctx = {**context, "lang": language, "t": strings(language)}
    head, _, body = _template(f"{language}/{template}.txt").render(ctx).partition("\n\n")
    if not head.startswith("Subject: "):
        raise TemplateMissing(f"{language}/{template}.txt must start with a 'Subject: ' line")
    html = _template(f"{language}/{template}.html").render(ctx)
    return RenderedMessage(template, language, head.removeprefix("Subject: ").strip(), body.strip() + "\n", html)


def render_page(page: str, language: str, context: dict[str, Any]) -> str:
    """An HTML page aftercart serves to customers (the address correction form): one file under
    `pages/`, its words from the language's strings.toml."""
    return _template(f"pages/{page}.html").render({**context, "lang": language, "t": strings(language)})
