"""stackherd's configuration: one settings model, read once from `STACKHERD_*` and the standard AWS variables.

It lives in the models layer so that the table models take their names from it; the runtime builds every
collaborator (and the planner's settings) from the same object.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from models.config import DEFAULT_TENANT_ROLE_NAME


class SettingsError(ValueError):
    """An environment variable holds a value stackherd cannot use."""


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, over a given mapping instead of `os.environ` (tests pass one)."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._env = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # What pydantic-settings does with os.environ: names compared without case, empty values unset.
        return {
            (name if self.case_sensitive else name.lower()): value
            for name, value in self._env.items()
            if not (self.env_ignore_empty and value == "")
        }


class Settings(BaseSettings):
    """Configuration, read from `STACKHERD_*` (an empty variable counts as unset) and `AWS_REGION`."""

    model_config = SettingsConfigDict(env_prefix="STACKHERD_", env_ignore_empty=True, frozen=True, extra="ignore")

    tenants_table: str = "stackherd-tenants"
    gameservers_table: str = "stackherd-gameservers"
    activity_table: str = "stackherd-activity"
    template_bucket: str = "stackherd-templates"
    #: The account that must own the template bucket, sent as `ExpectedBucketOwner` with every S3 call. Unset:
    #: the account of the function's own credentials (STS GetCallerIdentity), where the deployment creates it.
    template_bucket_owner: str | None = Field(default=None, pattern=r"^\d{12}$")
    installation: str = Field(default="stackherd", pattern=r"^[a-z][a-z0-9]{0,19}$")
    region: str = Field(default="us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))
    requeue_queue_url: str | None = None
    #: The SQS FIFO work queue every trigger sends to (one message group per tenant); unset: passes run in-process.
    work_queue_url: str | None = None
    #: The tenant worker's function name, which the admin function and the API invoke for a dry-run plan.
    worker_function: str | None = None
    #: The deployment's `TenantRoleName`: the only role name stackherd may assume in a tenant account.
    tenant_role_name: str = Field(default=DEFAULT_TENANT_ROLE_NAME, pattern=r"^[A-Za-z0-9+=,.@_-]{1,64}$")
    sweep_concurrency: int = Field(default=8, ge=1, le=64)
    max_deletions: int = Field(default=10, ge=0)
    deletion_window_s: int = Field(
        default=3600,
        ge=60,
        le=7 * 24 * 3600,
        validation_alias=AliasChoices("STACKHERD_DELETION_WINDOW_SECONDS", "deletion_window_s"),
    )
    delete_retry_limit: int = Field(default=3, ge=1)
    requeue_after_s: int = Field(
        default=30, ge=1, le=900, validation_alias=AliasChoices("STACKHERD_REQUEUE_AFTER_SECONDS", "requeue_after_s")
    )
    account_calls_per_second: float | None = Field(default=None, gt=0, le=1000)
    #: Tenant-regions whose credentials and CloudFormation clients a warm process keeps (least recently used
    #: evicted first): the bound on a long-lived worker's memory.
    client_cache_size: int = Field(default=256, ge=1, le=100_000)
    #: CloudFormation operations a generation may cost while it fails before the server is held.
    failure_budget: int = Field(default=3, ge=1, le=100)
    #: The wait after a failed attempt (doubled for each further one).
    failure_backoff_s: int = Field(
        default=300,
        ge=1,
        le=86400,
        validation_alias=AliasChoices("STACKHERD_FAILURE_BACKOFF_SECONDS", "failure_backoff_s"),
    )
    #: An operation in progress for longer than this is reported as Stuck (never cancelled).
    stuck_after_s: int = Field(
        default=3600, ge=60, validation_alias=AliasChoices("STACKHERD_STUCK_AFTER_SECONDS", "stuck_after_s")
    )
    #: A stack left in REVIEW_IN_PROGRESS longer than this is held.
    review_grace_s: int = Field(
        default=900, ge=0, validation_alias=AliasChoices("STACKHERD_REVIEW_GRACE_SECONDS", "review_grace_s")
    )
    #: A tenant in a rollout's wave that is not Ready at the new version this long after its pin has failed.
    rollout_tenant_timeout_s: int = Field(
        default=3600,
        ge=60,
        le=7 * 24 * 3600,
        validation_alias=AliasChoices("STACKHERD_ROLLOUT_TENANT_TIMEOUT_SECONDS", "rollout_tenant_timeout_s"),
    )

    #: Desired-state writes (PUT, PATCH, DELETE of a server) one player may make: a token bucket refilled at this
    #: rate, holding at most the burst (`rate#` items in the tenants table, shared by every API instance).
    player_writes_per_minute: float = Field(default=6, gt=0, le=6000)
    player_write_burst: int = Field(default=10, ge=1, le=1000)
    #: The same for all the players of one tenant together.
    tenant_writes_per_minute: float = Field(default=60, gt=0, le=60000)
    tenant_write_burst: int = Field(default=100, ge=1, le=10000)
    #: A server moved to another region less than this long ago cannot move again (each move is a new stack and
    #: a deletion); 0 turns the cool-down off.
    region_move_cooldown_s: int = Field(
        default=600,
        ge=0,
        le=7 * 24 * 3600,
        validation_alias=AliasChoices("STACKHERD_REGION_MOVE_COOLDOWN_SECONDS", "region_move_cooldown_s"),
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """The settings in `env` (default: the process environment); raises SettingsError naming the variable."""
        values = _MappingEnvSource(cls, os.environ if env is None else env)()
        try:
            return cls.model_validate({**values, **overrides})
        except ValidationError as error:
            problems = "; ".join(f"{_variable(str(e['loc'][0]))}: {e['msg']}" for e in error.errors())
            raise SettingsError(f"invalid configuration in the environment: {problems}") from None


def _variable(field: str) -> str:
    """The environment variable a field is read from, for error messages."""
    if field.isupper():
        return field  # already an alias (AWS_REGION, STACKHERD_*_SECONDS)
    return _SECONDS_VARIABLES.get(field, f"STACKHERD_{field.upper()}")


#: Fields whose variable is not the field's name: the region's, and the durations spelled out in seconds.
_SECONDS_VARIABLES = {
    "region": "AWS_REGION",
    "requeue_after_s": "STACKHERD_REQUEUE_AFTER_SECONDS",
    "deletion_window_s": "STACKHERD_DELETION_WINDOW_SECONDS",
    "failure_backoff_s": "STACKHERD_FAILURE_BACKOFF_SECONDS",
    "stuck_after_s": "STACKHERD_STUCK_AFTER_SECONDS",
    "review_grace_s": "STACKHERD_REVIEW_GRACE_SECONDS",
    "region_move_cooldown_s": "STACKHERD_REGION_MOVE_COOLDOWN_SECONDS",
    "rollout_tenant_timeout_s": "STACKHERD_ROLLOUT_TENANT_TIMEOUT_SECONDS",
}
