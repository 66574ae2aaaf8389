"""Configuration from the environment (SPEC §9); secrets are read here and never logged."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.hours import check_hours

from . import plugins


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    redis_url: str = Field("redis://127.0.0.1:6379/0", alias="TASKBOT_REDIS_URL")
    http_host: str = Field("127.0.0.1", alias="TASKBOT_HTTP_HOST")
    http_port: int = Field(8080, alias="TASKBOT_HTTP_PORT")
    public_url: str | None = Field(None, alias="TASKBOT_PUBLIC_URL")
    model: str = Field("scripted", alias="TASKBOT_MODEL")
    api_token: SecretStr | None = Field(None, alias="TASKBOT_API_TOKEN")
    #: The largest request body the web app reads (bytes); a bigger one gets 413 before it is parsed.
    max_body: int = Field(1024 * 1024, alias="TASKBOT_MAX_BODY", ge=1)
    max_concurrent_tasks: int = Field(10, alias="TASKBOT_MAX_CONCURRENT_TASKS")
    webhook_urls: str = Field("", alias="TASKBOT_WEBHOOK_URLS")
    webhook_secret: SecretStr | None = Field(None, alias="TASKBOT_WEBHOOK_SECRET")
    admins: str = Field("", alias="TASKBOT_ADMINS")
    #: Web Trigger callbacks to private, loopback or link-local addresses (refused unless true).
    callback_allow_private: bool = Field(False, alias="TASKBOT_CALLBACK_ALLOW_PRIVATE")
    #: How long a job may run before the sweeper runs it again (seconds).
    lease_seconds: float = Field(60.0, alias="TASKBOT_LEASE_SECONDS")
    #: How often the scheduler moves due reminders to the queue and sweeps leases (seconds).
    scheduler_interval: float = Field(0.5, alias="TASKBOT_SCHEDULER_INTERVAL")
    batch_size: int = Field(100, alias="TASKBOT_FANOUT_BATCH")
    #: When participants whose contact and task name no working hours may be messaged, in their own time
    #: zone: windows such as ``Mon-Fri 09:00-18:00`` (several split by ``;``), or ``always`` (SPEC §11).
    working_hours: str = Field("Mon-Fri 09:00-18:00", alias="TASKBOT_WORKING_HOURS")
    #: Python modules every process imports before building its engine: tools, output types, channels.
    plugins: str = Field("", alias="TASKBOT_PLUGINS")
    #: Assistants on a litellm model: conversation messages sent with each call (0: all of them),
    #: model calls per turn, retries of a rate limit or provider error, first backoff, call time-out.
    history_messages: int = Field(20, alias="TASKBOT_HISTORY_MESSAGES", ge=0)
    max_turn_steps: int = Field(6, alias="TASKBOT_MAX_TURN_STEPS", ge=1)
    model_retries: int = Field(4, alias="TASKBOT_MODEL_RETRIES", ge=0)
    model_backoff: float = Field(1.0, alias="TASKBOT_MODEL_BACKOFF", ge=0)
    model_timeout: float = Field(120.0, alias="TASKBOT_MODEL_TIMEOUT", gt=0)
    #: Slack: the channel is on when the bot token is set (SPEC §9).
    slack_bot_token: SecretStr | None = Field(None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(None, alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field("https://slack.com/api/", alias="TASKBOT_SLACK_API_URL")
    #: Slack's Web API limits, which the adapter keeps to across all workers: calls a minute per method tier,
    #: chat.postMessage a second workspace-wide (Slack publishes no figure) and per channel; and how often the
    #: member list (users.list, email -> user id) is read again in the background (seconds).
    slack_tier2_rate: float = Field(20, alias="TASKBOT_SLACK_TIER2_RATE", gt=0)
    slack_tier3_rate: float = Field(50, alias="TASKBOT_SLACK_TIER3_RATE", gt=0)
    slack_tier4_rate: float = Field(100, alias="TASKBOT_SLACK_TIER4_RATE", gt=0)
    slack_post_rate: float = Field(5, alias="TASKBOT_SLACK_POST_RATE", gt=0)
    slack_channel_rate: float = Field(1, alias="TASKBOT_SLACK_CHANNEL_RATE", gt=0)
    slack_directory_refresh: float = Field(3600, alias="TASKBOT_SLACK_DIRECTORY_REFRESH", gt=0)
    #: Telegram: the channel is on when the bot token is set; updates come to the webhook (checked with the
    #: secret) when TASKBOT_PUBLIC_URL is set, else by long polling (SPEC §9).
    telegram_bot_token: SecretStr | None = Field(None, alias="TELEGRAM_BOT_TOKEN")
    telegram_webhook_secret: SecretStr | None = Field(None, alias="TELEGRAM_WEBHOOK_SECRET")
    telegram_api_url: str = Field("https://api.telegram.org/bot", alias="TASKBOT_TELEGRAM_API_URL")
    #: Messages a second the bot sends in all and to one chat (Telegram's flood limits; raised for paid broadcasts).
    telegram_rate: float = Field(30, alias="TASKBOT_TELEGRAM_RATE", gt=0)
    telegram_chat_rate: float = Field(1, alias="TASKBOT_TELEGRAM_CHAT_RATE", gt=0)
    #: Email: on when the SMTP host and the From address are set; replies are read over IMAP (SPEC §9).
    smtp_host: str | None = Field(None, alias="TASKBOT_SMTP_HOST")
    smtp_port: int | None = Field(None, alias="TASKBOT_SMTP_PORT")  # default: 465 with TLS, 587 STARTTLS, 25
    smtp_user: str | None = Field(None, alias="TASKBOT_SMTP_USER")
    smtp_password: SecretStr | None = Field(None, alias="TASKBOT_SMTP_PASSWORD")
    smtp_starttls: bool | None = Field(None, alias="TASKBOT_SMTP_STARTTLS")  # unset: when the server offers it
    smtp_tls: bool = Field(False, alias="TASKBOT_SMTP_TLS")  # implicit TLS (port 465)
    #: A worker keeps its SMTP session open this many idle seconds for the next message (0: one per message),
    #: and opens a new one after this many messages.
    smtp_idle: float = Field(10, alias="TASKBOT_SMTP_IDLE", ge=0)
    smtp_session_messages: int = Field(100, alias="TASKBOT_SMTP_SESSION_MESSAGES", ge=1)
    email_from: str | None = Field(None, alias="TASKBOT_EMAIL_FROM")
    imap_host: str | None = Field(None, alias="TASKBOT_IMAP_HOST")
    imap_port: int | None = Field(None, alias="TASKBOT_IMAP_PORT")  # default: 993 with SSL, else 143
    imap_user: str | None = Field(None, alias="TASKBOT_IMAP_USER")  # default: the SMTP user
    imap_password: SecretStr | None = Field(None, alias="TASKBOT_IMAP_PASSWORD")  # default: the SMTP password
    imap_ssl: bool = Field(True, alias="TASKBOT_IMAP_SSL")
    imap_poll: float = Field(30.0, alias="TASKBOT_IMAP_POLL")
    #: Files taskbot keeps (email, Slack and Telegram attachments, under attachments/).
    data_dir: str = Field(".taskbot", alias="TASKBOT_DATA_DIR")
    #: The largest file a Slack or Telegram message may bring that is kept (bytes); a larger one is named only.
    max_file: int = Field(20 * 1024 * 1024, alias="TASKBOT_MAX_FILE", ge=1)

    @field_validator("working_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        check_hours(value)
        return value

    @field_validator("plugins")
    @classmethod
    def _plugins(cls, value: str) -> str:
        return plugins.check(value)

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.http_host}:{self.http_port}"

    @property
    def admin_ids(self) -> set[str]:
        return {a.strip() for a in self.admins.split(",") if a.strip()}
