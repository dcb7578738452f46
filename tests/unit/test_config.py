"""What a player may ask for: config validation, tier limits, identifiers and the CLI's key=value form."""

from __future__ import annotations

from typing import Any

import pytest

from models.config import (
    PARAMETER_NAMES,
    ConfigError,
    GameServerConfig,
    parse_assignments,
    tier_limits,
    validate_config,
    validate_id,
)


@pytest.mark.parametrize(
    ("raw", "tier", "expected"),
    [
        pytest.param(
            {}, "standard", GameServerConfig(difficulty="normal", player_count=4, seed="default"), id="defaults"
        ),
        pytest.param(
            {"difficulty": "hard", "player_count": 32, "seed": "Abc123"},
            "standard",
            GameServerConfig(difficulty="hard", player_count=32, seed="Abc123"),
            id="all-keys-at-tier-max",
        ),
        pytest.param({"player_count": 1}, "free", GameServerConfig(player_count=1), id="minimum-players"),
        pytest.param({"player_count": 8}, "free", GameServerConfig(player_count=8), id="free-tier-max"),
        pytest.param({"player_count": 128}, "premium", GameServerConfig(player_count=128), id="premium-tier-max"),
        pytest.param({"player_count": "8"}, "standard", GameServerConfig(player_count=8), id="cli-digit-string"),
        pytest.param({"difficulty": "peaceful"}, "standard", GameServerConfig(difficulty="peaceful"), id="peaceful"),
        pytest.param({"seed": "a" * 32}, "standard", GameServerConfig(seed="a" * 32), id="longest-seed"),
    ],
)
def test_validate_config_accepts(raw: dict[str, Any], tier: str, expected: GameServerConfig) -> None:
    assert validate_config(raw, tier) == expected


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        pytest.param({"colour": "red"}, "config.colour", ["config.colour", "Extra inputs"], id="unknown-key"),
        pytest.param({"PlayerCount": 4}, "config.PlayerCount", ["config.PlayerCount"], id="parameter-name-as-key"),
        pytest.param(
            {"player_count": "many"}, "config.player_count", ["config.player_count", "integer"], id="count-word"
        ),
        pytest.param({"player_count": 2.5}, "config.player_count", ["config.player_count"], id="count-fraction"),
        pytest.param({"player_count": True}, "config.player_count", ["config.player_count"], id="count-true"),
        pytest.param({"player_count": False}, "config.player_count", ["config.player_count"], id="count-false"),
        pytest.param({"player_count": 0}, "config.player_count", ["config.player_count", "1"], id="count-zero"),
        pytest.param({"player_count": -3}, "config.player_count", ["config.player_count", "1"], id="count-negative"),
        pytest.param({"player_count": None}, "config.player_count", ["config.player_count"], id="count-null"),
        pytest.param({"difficulty": "extreme"}, "config.difficulty", ["config.difficulty", "'hard'"], id="difficulty"),
        pytest.param({"difficulty": "HARD"}, "config.difficulty", ["config.difficulty"], id="difficulty-case"),
        pytest.param({"difficulty": 3}, "config.difficulty", ["config.difficulty"], id="difficulty-number"),
        pytest.param({"seed": "has space"}, "config.seed", ["config.seed", "pattern"], id="seed-space"),
        pytest.param({"seed": "semi;colon"}, "config.seed", ["config.seed"], id="seed-punctuation"),
        pytest.param({"seed": "abc\n"}, "config.seed", ["config.seed"], id="seed-trailing-newline"),
        pytest.param({"seed": ""}, "config.seed", ["config.seed"], id="seed-empty"),
        pytest.param({"seed": "a" * 33}, "config.seed", ["config.seed"], id="seed-too-long"),
        pytest.param({"seed": 12345}, "config.seed", ["config.seed", "string"], id="seed-number"),
    ],
)
def test_validate_config_rejects_naming_the_field(raw: dict[str, Any], field: str, words: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config(raw)

    assert caught.value.field == field
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize(
    ("count", "tier", "limit"),
    [
        pytest.param(9, "free", 8, id="free"),
        pytest.param(33, "standard", 32, id="standard"),
        pytest.param(100, "free", 8, id="far-above-free"),
    ],
)
def test_player_count_above_the_tier_names_tier_and_limit(count: int, tier: str, limit: int) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config({"player_count": count}, tier)

    assert caught.value.field == "config.player_count"
    assert str(caught.value) == f"config.player_count: {count} exceeds the {tier} tier's maximum of {limit}"


def test_player_count_above_every_tier_names_the_limit() -> None:
    with pytest.raises(ConfigError, match="128") as caught:
        validate_config({"player_count": 129}, "premium")

    assert caught.value.field == "config.player_count"


def test_several_problems_are_all_reported() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config({"player_count": 0, "seed": "no spaces"})

    assert "config.player_count" in str(caught.value)
    assert "config.seed" in str(caught.value)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(None, id="none"),
        pytest.param([("difficulty", "easy")], id="list"),
        pytest.param('{"difficulty": "easy"}', id="json-string"),
        pytest.param(4, id="number"),
    ],
)
def test_validate_config_rejects_a_non_object(raw: Any) -> None:
    with pytest.raises(ConfigError, match="config must be an object") as caught:
        validate_config(raw)

    assert caught.value.field == "config"


def test_an_unknown_tier_is_rejected_by_name() -> None:
    with pytest.raises(ConfigError, match="unknown tier 'gold'") as caught:
        validate_config({}, "gold")

    assert caught.value.field == "tier"
    assert tier_limits("free").max_player_count == 8


def test_parameters_are_cloudformation_names_with_string_values() -> None:
    config = validate_config({"difficulty": "easy", "player_count": "12", "seed": "s33d"})

    assert config.parameters() == {"Difficulty": "easy", "PlayerCount": "12", "Seed": "s33d"}


@pytest.mark.parametrize("value", ["a", "0", "alpha-1", "a-b-c", "a" * 40, "9lives"])
def test_validate_id_accepts(value: str) -> None:
    assert validate_id(value, "tenant id") == value


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("Alpha", id="uppercase"),
        pytest.param("-alpha", id="leading-hyphen"),
        pytest.param("alpha-", id="trailing-hyphen"),
        pytest.param("al_pha", id="underscore"),
        pytest.param("al pha", id="space"),
        pytest.param("a" * 41, id="too-long"),
        pytest.param("alpha\n", id="trailing-newline"),
        pytest.param("alpha/../beta", id="path"),
        pytest.param(7, id="not-a-string"),
    ],
)
def test_validate_id_rejects_naming_what_and_value(value: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_id(value, "game server id")

    assert caught.value.field == "game_server_id"
    assert str(caught.value).startswith(f"game server id {value!r} is invalid")


def test_parse_assignments_parses_each_value_as_the_schemas_type() -> None:
    raw = parse_assignments(["difficulty=hard", " player_count = 8 ", "seed=a=b"])

    assert raw == {"difficulty": "hard", "player_count": 8, "seed": "a=b"}
    assert validate_config({k: v for k, v in raw.items() if k != "seed"}).player_count == 8


@pytest.mark.parametrize("value", ["abc", "1_0", "8.0", "-1", "0x8", "", "\uff18"])
def test_set_player_count_that_is_not_an_integer_says_it_must_be_an_integer(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_assignments([f"player_count={value}"])

    assert "player_count must be an integer" in str(caught.value)
    assert (caught.value.field, caught.value.rule) == ("config.player_count", "int_type")


def test_parse_assignments_later_value_wins() -> None:
    assert parse_assignments(["seed=a", "seed=b"]) == {"seed": "b"}


@pytest.mark.parametrize("item", ["difficulty", "=hard", " =hard", ""])
def test_parse_assignments_rejects_what_is_not_key_value(item: str) -> None:
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_assignments(["seed=ok", item])


@pytest.mark.parametrize(
    "config",
    [GameServerConfig(), GameServerConfig(difficulty="hard", player_count=128, seed="Zz9")],
    ids=["defaults", "set"],
)
def test_parameters_render_every_mapped_config_key_as_a_string(config: GameServerConfig) -> None:
    # `parameters()` spells the mapping out for speed; it must stay exactly `PARAMETER_NAMES` applied.
    assert config.parameters() == {name: str(getattr(config, key)) for key, name in PARAMETER_NAMES.items()}
