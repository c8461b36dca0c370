"""Settings of access-control, read once from `BILLSTATE_ACCESS_CONTROL_*`."""

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from billstate_shared.runtime.retry import RetryPolicy
from billstate_shared.settings import ServiceSettings
from billstate_shared.topics import PAYMENTS

PREFIX = "BILLSTATE_ACCESS_CONTROL_"

# The consumer's max.poll.interval.ms (aiokafka's default, which the Loop keeps): a batch
# that takes longer costs the partitions. A batch is kept to 80% of it.
POLL_INTERVAL = 300.0
BATCH_SHARE = 0.8
# A record may wait one budget for the lock (the reconciler or a re-attempt holds it for at
# most one) and then spend one of its own: two budgets per record at most.
MAX_COMMAND_BUDGET = POLL_INTERVAL * BATCH_SHARE / 2
MAX_RECORDS = 50


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, extra="ignore")

    service: str = "access-control"
    http_port: int = 8080
    data_dir: Path = Path(".cache/data/access-control")
    consumer_group: str = "access-control"
    # Where access lives: the service's own store (builtin), Partner Center, or the
    # partner's own system behind a signed webhook. `ledger`, builtin's old name, still works.
    provider: Literal["builtin", "partner_center", "webhook"] = "builtin"
    # Per subscription: the first call plus retries; delays double from the base delay.
    retry_attempts: int = Field(default=5, ge=1)
    retry_base_delay: float = Field(default=0.2, ge=0)
    retry_max_delay: float = Field(default=30.0, ge=0)
    # Seconds one command may spend on provider calls and the waits between them. A command
    # that runs out is parked in the store and tried again later; the partition moves on.
    command_budget: float = Field(default=30.0, gt=0, le=MAX_COMMAND_BUDGET)
    # A parked command is tried again after PARK_DELAY seconds, doubling each time it is
    # parked again, or after the provider's Retry-After when longer; at most PARK_MAX_DELAY.
    park_delay: float = Field(default=60.0, gt=0)
    park_max_delay: float = Field(default=900.0, gt=0)
    # How often the store is checked for parked commands that are due.
    park_poll_interval: float = Field(default=5.0, gt=0, le=300)
    # Seconds between reconcile passes (desired vs what the provider reports); 0: only on
    # POST /reconcile. A pass reads every subscription billstate has touched, a page at a time.
    reconcile_interval: float = Field(default=300.0, ge=0)
    reconcile_page: int = Field(default=500, ge=1)

    # The guards (docs/operations.md, "Guards at the actuator"). The brake: suspend commands
    # a provider may apply per rolling 24 hours (wall clock); one more is held for approval.
    # 0: no brake.
    brake_cap: int = Field(default=50, ge=0)
    # Seconds the payments topic may go without a record (wall clock against the newest
    # record's timestamp) before suspend commands are held; 0: no guard. An empty topic is
    # silent. Checked at start and every PAYMENT_FEED_CHECK_INTERVAL seconds.
    payment_feed_max_age: float = Field(default=36 * 3600.0, ge=0)
    payment_feed_check_interval: float = Field(default=60.0, gt=0, le=3600)
    # The topic whose newest record tells (another name for a test or a staging feed).
    payment_feed_topic: str = Field(default=PAYMENTS.name, min_length=1)
    # Seconds a batch of held commands gathers before its one approval notice goes out.
    approval_settle: float = Field(default=60.0, ge=0, le=3600)

    # The cost poller (provider = partner_center): seconds between reads of the newest billed
    # invoices' reconciliation line items, published as cost.recorded; 0 (the default): off.
    cost_poll_interval: float = Field(default=0.0, ge=0)
    cost_invoices: int = Field(default=3, ge=1, le=24)  # the newest invoices each poll looks at
    cost_page: int = Field(default=2000, ge=1, le=2000)  # line items per page

    # Commitments at stake (provider = partner_center): for customers in these collections
    # stages, seconds between reads of their subscriptions' terms, announcing an auto-renewal
    # within COMMITMENT_DAYS_AHEAD days or an open cancellation window; 0: off. List the
    # policy's stages from the one to start at upward.
    commitment_interval: float = Field(default=6 * 3600.0, ge=0)
    commitment_stages: tuple[str, ...] = ("final_notice", "suspended")
    commitment_days_ahead: int = Field(default=14, ge=0, le=366)

    # Partner Center (provider = partner_center): an app registered in the partner's tenant.
    partner_center_base_url: str = "https://api.partnercenter.microsoft.com"
    # https://login.microsoftonline.com/<partner tenant id>/oauth2/v2.0/token
    partner_center_token_url: str = ""
    partner_center_client_id: str = ""
    partner_center_client_secret: SecretStr | None = None
    partner_center_client_secret_file: Path | None = None
    partner_center_scope: str = "https://api.partnercenter.microsoft.com/.default"
    # YAML: billstate customer id -> customer tenant id, and subscription id mappings.
    partner_center_mapping_file: Path | None = None
    partner_center_timeout: float = Field(default=10.0, gt=0, le=120)

    # Webhook (provider = webhook): Standard Webhooks signed POSTs to the partner's system.
    webhook_url: str = ""
    webhook_secret: SecretStr | None = None
    webhook_secret_file: Path | None = None
    webhook_timeout: float = Field(default=10.0, gt=0, le=120)

    @field_validator("provider", mode="before")
    @classmethod
    def _old_name(cls, value: object) -> object:
        """`ledger` is what the built-in provider was called before; it still means builtin."""
        return "builtin" if value == "ledger" else value

    @property
    def retry(self) -> RetryPolicy:
        """How often a provider call is tried per subscription, and the waits in between."""
        return RetryPolicy(self.retry_attempts, self.retry_base_delay, self.retry_max_delay)

    @property
    def watches_commitments(self) -> bool:
        """Whether stages are followed and commitments checked (they need Partner Center)."""
        return self.provider == "partner_center" and self.commitment_interval > 0

    @property
    def polls_costs(self) -> bool:
        return self.provider == "partner_center" and self.cost_poll_interval > 0

    @property
    def max_records(self) -> int:
        """Records per poll: at two budgets per record, a batch ends within 80% of the poll
        interval (4 records with the 30 s default; never more than 50)."""
        fits = int(POLL_INTERVAL * BATCH_SHARE // (2 * self.command_budget))
        return max(1, min(MAX_RECORDS, fits))

    @property
    def approval_poll_interval(self) -> float:
        """How often due batches are looked for: a quarter of the settle window, between
        0.1 and 5 seconds."""
        return min(max(self.approval_settle / 4, 0.1), 5.0)

    @model_validator(mode="after")
    def _provider_complete(self) -> Self:
        """A provider without what it needs stops the start-up, naming the variables."""
        needed: dict[str, object] = {}
        if self.provider == "partner_center":
            needed = {
                "PARTNER_CENTER_TOKEN_URL": self.partner_center_token_url,
                "PARTNER_CENTER_CLIENT_ID": self.partner_center_client_id,
                "PARTNER_CENTER_CLIENT_SECRET (or _FILE)": self.partner_center_client_secret,
                "PARTNER_CENTER_MAPPING_FILE": self.partner_center_mapping_file,
            }
        elif self.provider == "webhook":
            needed = {
                "WEBHOOK_URL": self.webhook_url,
                "WEBHOOK_SECRET (or _FILE)": self.webhook_secret,
            }
        missing = [PREFIX + name for name, value in needed.items() if not value]
        if missing:
            raise ValueError(f"provider {self.provider} needs {', '.join(missing)}")
        return self
