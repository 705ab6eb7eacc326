"""Which language a customer message is written in (POLICY.md, SOP 1 and 8)."""

from __future__ import annotations

from dataclasses import dataclass

from domain.policy import Policy


@dataclass(frozen=True)
class LanguageChoice:
    language: str
    reason: str


def pick_language(policy: Policy, customer_locale: str | None, country_code: str | None) -> LanguageChoice:
    """The order's `customer_locale` when its language is enabled (`es-MX` -> `es`), else the
    market's language, else the policy's fallback."""
    enabled = policy.communication.languages
    locale = (customer_locale or "").strip().replace("_", "-").lower()
    if locale:
        lang = locale.split("-")[0]
        if lang in enabled:
            return LanguageChoice(lang, f"customer locale {customer_locale}")
    market = policy.market_for(country_code)
    if market.language in enabled:
        return LanguageChoice(market.language, f"market language ({country_code or 'default market'})")
    return LanguageChoice(policy.communication.fallback_language, "fallback language")
