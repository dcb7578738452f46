"""infra/sam/gameserver.yaml: its parameters agree with the config schema the API validates against, and every
physical name is scoped to the stack, so many game servers coexist in one account."""

from __future__ import annotations

import re
import typing
from typing import Any

from models.config import PARAMETER_NAMES, SEED_PATTERN, TIERS, Difficulty, GameServerConfig
from tests.infra import cfn


def test_parameters_are_exactly_the_config_mapping(gameserver: dict[str, Any]) -> None:
    assert set(gameserver["Parameters"]) == set(PARAMETER_NAMES.values()) == {"Difficulty", "PlayerCount", "Seed"}


def test_difficulty_allows_exactly_the_schema_values(gameserver: dict[str, Any]) -> None:
    difficulty = gameserver["Parameters"]["Difficulty"]
    assert difficulty["Type"] == "String"
    assert difficulty["AllowedValues"] == ["peaceful", "easy", "normal", "hard"]
    assert set(difficulty["AllowedValues"]) == set(typing.get_args(Difficulty))


def test_player_count_bounds_cover_every_tier(gameserver: dict[str, Any]) -> None:
    player_count = gameserver["Parameters"]["PlayerCount"]
    assert player_count["Type"] == "Number"
    assert player_count["MinValue"] == 1
    assert player_count["MaxValue"] == 128
    assert player_count["MaxValue"] == max(t.max_player_count for t in TIERS.values())


def test_seed_pattern_is_the_schema_pattern(gameserver: dict[str, Any]) -> None:
    seed = gameserver["Parameters"]["Seed"]
    assert seed["Type"] == "String"
    assert seed["AllowedPattern"] == "^[A-Za-z0-9]{1,32}$" == SEED_PATTERN


def test_no_parameter_has_a_default(gameserver: dict[str, Any]) -> None:
    # The reconciler always sends every parameter; a default would hide a rendering bug.
    assert all("Default" not in p for p in gameserver["Parameters"].values())


def test_rendered_parameters_satisfy_the_template_constraints(gameserver: dict[str, Any]) -> None:
    params = gameserver["Parameters"]
    for config in (
        GameServerConfig(),
        GameServerConfig(difficulty="peaceful", player_count=1, seed="a"),
        GameServerConfig(difficulty="hard", player_count=128, seed="Z" * 32),
    ):
        rendered = config.parameters()
        assert set(rendered) == set(params)
        assert rendered["Difficulty"] in params["Difficulty"]["AllowedValues"]
        assert params["PlayerCount"]["MinValue"] <= int(rendered["PlayerCount"]) <= params["PlayerCount"]["MaxValue"]
        assert re.fullmatch(params["Seed"]["AllowedPattern"], rendered["Seed"])


def test_ssm_parameter_has_a_stack_scoped_name(gameserver: dict[str, Any]) -> None:
    ssm = cfn.of_type(gameserver, "AWS::SSM::Parameter")
    assert ssm, "the game server keeps its config in an SSM parameter"
    for name, res in ssm.items():
        # moto's CloudFormation crashes on an SSM parameter without a Name.
        assert "Name" in res["Properties"], f"{name} needs a Name"
        assert cfn.sub_text(res["Properties"]["Name"]).startswith("/stackherd/${AWS::StackName}/")


def test_config_parameter_holds_the_config_as_json(gameserver: dict[str, Any]) -> None:
    import json

    value = cfn.props(gameserver, "ConfigParameter")["Value"]
    rendered = cfn.resolve_sub(value, {"Difficulty": "hard", "PlayerCount": "12", "Seed": "abc"})
    assert json.loads(rendered) == {"difficulty": "hard", "player_count": 12, "seed": "abc"}


def test_every_named_resource_is_scoped_to_the_stack(gameserver: dict[str, Any]) -> None:
    name_properties = {"AWS::SSM::Parameter": "Name", "AWS::Logs::LogGroup": "LogGroupName"}
    for logical_id, res in gameserver["Resources"].items():
        assert res["Type"] in name_properties, (
            f"{logical_id}: {res['Type']} is new; name it after the stack, grant it in tenant-role.yaml and "
            "add it to the maps in the infra tests"
        )
        text = cfn.sub_text(res["Properties"][name_properties[res["Type"]]])
        assert text.startswith("/stackherd/${AWS::StackName}"), f"{logical_id}: {text}"


def test_outputs_describe_the_config(gameserver: dict[str, Any]) -> None:
    outputs = gameserver["Outputs"]
    assert {"ConfigParameterName", "Config", "LogGroupName", "Difficulty", "PlayerCount", "Seed"} <= set(outputs)
    # The Config output renders the same text the parameter holds.
    assert outputs["Config"]["Value"] == cfn.props(gameserver, "ConfigParameter")["Value"]
