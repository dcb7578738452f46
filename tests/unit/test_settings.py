"""One settings model (`models.settings.Settings`), read once from the environment; the tables and the engine
take theirs from it."""

from __future__ import annotations

import pytest

from models.settings import Settings, SettingsError

EVERY_VARIABLE = {
    "STACKHERD_TENANTS_TABLE": "t-tenants",
    "STACKHERD_GAMESERVERS_TABLE": "t-servers",
    "STACKHERD_ACTIVITY_TABLE": "t-activity",
    "STACKHERD_TEMPLATE_BUCKET": "t-bucket",
    "STACKHERD_TEMPLATE_BUCKET_OWNER": "123456789012",
    "STACKHERD_INSTALLATION": "prod",
    "STACKHERD_REQUEUE_QUEUE_URL": "https://sqs.example/queue",
    "STACKHERD_WORK_QUEUE_URL": "https://sqs.example/work.fifo",
    "STACKHERD_WORKER_FUNCTION": "stackherd-worker",
    "STACKHERD_SWEEP_CONCURRENCY": "4",
    "STACKHERD_MAX_DELETIONS": "2",
    "STACKHERD_DELETION_WINDOW_SECONDS": "7200",
    "STACKHERD_DELETE_RETRY_LIMIT": "5",
    "STACKHERD_REQUEUE_AFTER_SECONDS": "45",
    "STACKHERD_ACCOUNT_CALLS_PER_SECOND": "2.5",
    "STACKHERD_FAILURE_BUDGET": "4",
    "STACKHERD_FAILURE_BACKOFF_SECONDS": "120",
    "STACKHERD_STUCK_AFTER_SECONDS": "1800",
    "STACKHERD_REVIEW_GRACE_SECONDS": "600",
    "STACKHERD_CLIENT_CACHE_SIZE": "64",
    "STACKHERD_TENANT_ROLE_NAME": "GameRunner",
    "STACKHERD_PLAYER_WRITES_PER_MINUTE": "3",
    "STACKHERD_PLAYER_WRITE_BURST": "5",
    "STACKHERD_TENANT_WRITES_PER_MINUTE": "30.5",
    "STACKHERD_TENANT_WRITE_BURST": "50",
    "STACKHERD_REGION_MOVE_COOLDOWN_SECONDS": "300",
    "STACKHERD_ROLLOUT_TENANT_TIMEOUT_SECONDS": "5400",
    "AWS_REGION": "eu-west-1",
}


def test_every_stackherd_variable_keeps_its_name() -> None:
    settings = Settings.from_env(EVERY_VARIABLE)

    assert settings.model_dump() == {
        "tenants_table": "t-tenants",
        "gameservers_table": "t-servers",
        "activity_table": "t-activity",
        "template_bucket": "t-bucket",
        "template_bucket_owner": "123456789012",
        "installation": "prod",
        "region": "eu-west-1",
        "requeue_queue_url": "https://sqs.example/queue",
        "work_queue_url": "https://sqs.example/work.fifo",
        "worker_function": "stackherd-worker",
        "sweep_concurrency": 4,
        "max_deletions": 2,
        "deletion_window_s": 7200,
        "delete_retry_limit": 5,
        "requeue_after_s": 45,
        "account_calls_per_second": 2.5,
        "client_cache_size": 64,
        "failure_budget": 4,
        "failure_backoff_s": 120,
        "stuck_after_s": 1800,
        "review_grace_s": 600,
        "tenant_role_name": "GameRunner",
        "player_writes_per_minute": 3.0,
        "player_write_burst": 5,
        "tenant_writes_per_minute": 30.5,
        "tenant_write_burst": 50,
        "region_move_cooldown_s": 300,
        "rollout_tenant_timeout_s": 5400,
    }


def test_a_template_bucket_owner_that_is_no_account_id_is_refused_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match="STACKHERD_TEMPLATE_BUCKET_OWNER"):
        Settings.from_env({"STACKHERD_TEMPLATE_BUCKET_OWNER": "acme-corp"})
    assert Settings.from_env({}).template_bucket_owner is None  # derived from the function's own account


def test_defaults_and_empty_variables() -> None:
    settings = Settings.from_env({"STACKHERD_MAX_DELETIONS": "", "AWS_DEFAULT_REGION": "ap-south-1"})

    assert (settings.max_deletions, settings.region, settings.tenants_table) == (10, "ap-south-1", "stackherd-tenants")
    assert settings.client_cache_size == 256
    assert Settings.from_env({"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "eu-west-1"}).region == "us-west-2"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STACKHERD_SWEEP_CONCURRENCY", "many"),
        ("STACKHERD_SWEEP_CONCURRENCY", "0"),
        ("STACKHERD_REQUEUE_AFTER_SECONDS", "901"),
        ("STACKHERD_DELETION_WINDOW_SECONDS", "59"),
        ("STACKHERD_INSTALLATION", "Prod!"),
        ("STACKHERD_ACCOUNT_CALLS_PER_SECOND", "-1"),
        ("STACKHERD_FAILURE_BUDGET", "0"),
        ("STACKHERD_FAILURE_BACKOFF_SECONDS", "soon"),
        ("STACKHERD_STUCK_AFTER_SECONDS", "59"),
        ("STACKHERD_REVIEW_GRACE_SECONDS", "-1"),
        ("STACKHERD_CLIENT_CACHE_SIZE", "0"),
    ],
)
def test_a_bad_value_is_a_settings_error_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"invalid configuration in the environment: {variable}: "):
        Settings.from_env({variable: value})


def test_the_tables_take_their_names_from_the_settings() -> None:
    from models import tables

    try:
        tables.configure(Settings.from_env(EVERY_VARIABLE))
        assert (tables.TenantModel.Meta.table_name, tables.AccountModel.Meta.table_name) == ("t-tenants", "t-tenants")
        assert tables.GameServerModel.Meta.table_name == "t-servers"
        assert tables.ActivityModel.Meta.table_name == "t-activity"
        assert tables.GameServerModel.Meta.region == "eu-west-1"
    finally:
        tables.configure(Settings.from_env({}))


def test_the_engine_is_given_the_planners_settings() -> None:
    from handlers.runtime import plan_settings
    from reconciler.planner import PlanSettings

    assert plan_settings(Settings.from_env(EVERY_VARIABLE)) == PlanSettings(
        installation="prod",
        max_deletions=2,
        delete_retry_limit=5,
        requeue_after_s=45,
        deletion_window_s=7200,
        failure_budget=4,
        failure_backoff_s=120,
        stuck_after_s=1800,
        review_grace_s=600,
    )
