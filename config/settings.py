"""Runtime settings from `AFTERCART_*` environment variables (and an optional `.env`).

Read only through `load_settings()`; nothing is read at import time.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AFTERCART_", env_file=".env", extra="ignore", frozen=True)

    data_dir: Path = Path(".aftercart")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///<data_dir>/aftercart.db"
    )
    policy: Path | None = Field(default=None, description="policy file; default config/policies/default.toml")

    # Shopify (the sandbox by default)
    shop_domain: str = "sandbox.myshopify.com"
    shopify_admin_url: str | None = Field(
        default=None, description="GraphQL endpoint; default the sandbox's /admin/api/<version>/graphql.json"
    )
    shopify_api_version: str = "2026-10"
    shopify_access_token: SecretStr = SecretStr("sandbox-token")
    shopify_max_attempts: int = Field(default=8, ge=1, le=20, description="tries per Admin API call (THROTTLED, "
                                      "429 and 5xx are retried with capped backoff)")
    threepl_max_attempts: int = Field(default=5, ge=1, le=20, description="tries per 3PL or helpdesk call")
    webhook_secret: SecretStr = SecretStr("sandbox-webhook-secret")
    link_secret: SecretStr = Field(default=SecretStr("sandbox-link-secret"),
                                   description="signs the self-serve links sent to customers")
    public_url: str | None = Field(default=None, description="where customers reach aftercart's pages (the "
                                   "address correction form); default the intake service's URL")
    address_verifier_url: str | None = Field(default=None, description="online address verifier (delivery-point "
                                             "checks); off by default: nothing leaves the machine unless set")

    # 3PL and mail (the sandbox's by default)
    threepl_url: str | None = Field(default=None, description="3PL REST base URL; default the sandbox")
    helpdesk_url: str | None = Field(default=None, description="helpdesk REST base URL; default the sandbox")
    threepl_push_secret: SecretStr = Field(default=SecretStr("sandbox-3pl-secret"),
                                           description="verifies the 3PL's status pushes (X-3PL-Signature)")
    inbound_email_secret: SecretStr = Field(default=SecretStr("sandbox-inbound-secret"), description="verifies "
                                            "customer replies posted by the mail provider (X-Inbound-Signature)")
    smtp_host: str = "127.0.0.1"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_sessions: int = Field(default=4, ge=1, le=64, description="SMTP sessions a batch of customer messages is "
                               "sent over at once (each message waits on the mail server's reply)")
    mail_from: str = "orders@sandbox.test"

    # Local services started by `aftercart up`
    host: str = "127.0.0.1"
    sandbox_port: int = 8710
    intake_port: int = 8711
    smtp_port: int = 8725  # the sandbox mailbox (SMTP); messages readable at <sandbox>/mailbox/messages
    prefect_port: int = 4200
    intake_max_body_bytes: int = 1024 * 1024

    def prefect_ui_url(self) -> str:
        import os

        return os.environ.get("PREFECT_UI_URL") or f"http://{self.host}:{self.prefect_port}"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'aftercart.db').resolve()}"

    def sandbox_url(self) -> str:
        return f"http://{self.host}:{self.sandbox_port}"

    def intake_url(self) -> str:
        return f"http://{self.host}:{self.intake_port}"

    def customer_url(self) -> str:
        return (self.public_url or self.intake_url()).rstrip("/")

    def threepl_base_url(self) -> str:
        return self.threepl_url or self.sandbox_url()

    def helpdesk_base_url(self) -> str:
        return self.helpdesk_url or self.threepl_url or self.sandbox_url()

    def graphql_url(self) -> str:
        return self.shopify_admin_url or f"{self.sandbox_url()}/admin/api/{self.shopify_api_version}/graphql.json"


def load_settings(**overrides) -> Settings:
    return Settings(**overrides)
