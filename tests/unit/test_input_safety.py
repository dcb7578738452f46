"""Input that cannot poison a pass: identifier patterns are ASCII-only in every regex engine that applies them,
the owner tag is a value every AWS tag accepts, regions are checked against botocore's partitions, and SDK
failures are classified in one place."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    InvalidRegionError,
    NoRegionError,
    ReadTimeoutError,
    UnknownEndpointError,
)
from botocore.parsers import ResponseParserError
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from handlers.api.models import Region
from models.config import (
    ACCOUNT_PATTERN,
    ID_PATTERN,
    REGION_PATTERN,
    SEED_PATTERN,
    VERSION_PATTERN,
    ConfigError,
    validate_tenant,
)
from reconciler import naming
from reconciler.errors import PermanentError, TransientError, UnknownRegionError, classify_exception
from reconciler.regions import check_regions, region_problem

#: Digits of other scripts that `\d` matches: Arabic-Indic one, Devanagari one, fullwidth one, math bold one.
UNICODE_DIGITS = ("\u0661", "\u0967", "\uff11", "\U0001d7cf")
PATTERNS = {
    "region": (REGION_PATTERN, "us-east-1"),
    "account": (ACCOUNT_PATTERN, "111111111111"),
    "id": (ID_PATTERN, "alpha-1"),
    "version": (VERSION_PATTERN, "v1"),
    "seed": (SEED_PATTERN, "seed1"),
}


@pytest.mark.parametrize("name", sorted(PATTERNS))
@pytest.mark.parametrize("digit", UNICODE_DIGITS)
def test_identifier_patterns_refuse_unicode_digits_in_python_and_pydantic(name: str, digit: str) -> None:
    pattern, valid = PATTERNS[name]
    poisoned = valid.replace("1", digit)
    assert re.fullmatch(pattern, valid) and not re.fullmatch(pattern, poisoned)
    checked = TypeAdapter(Annotated[str, Field(pattern=pattern)])  # pydantic-core's own regex engine
    checked.validate_python(valid)
    with pytest.raises(ValidationError):
        checked.validate_python(poisoned)


def test_region_with_a_non_ascii_digit_is_refused_by_tenants_add_and_the_api() -> None:
    with pytest.raises(ConfigError, match="regions"):
        validate_tenant({"tenant_id": "alpha", "account_id": "111111111111", "regions": ["us-east-\u0661"]})

    class Body(BaseModel):
        region: Region

    with pytest.raises(ValidationError):
        Body.model_validate({"region": "us-east-\u0661"})


# --- the owner tag -------------------------------------------------------------------------------------

#: The strictest tag value AWS services accept (letters, digits, spaces and _ . : / = + - @).
AWS_TAG_VALUE = re.compile(r"[A-Za-z0-9 _.:/=+\-@]{1,256}")


@pytest.mark.parametrize("name", ["o'brien", "ana!", "jose\u0301", "jos\u00e9", "\u674e\u5c0f\u9f99", "a b", "x" * 128])
def test_owner_tag_of_awkward_player_names_is_accepted_by_every_aws_tag(name: str) -> None:
    assert AWS_TAG_VALUE.fullmatch(naming.owner_tag(name))


@given(st.text(min_size=1, max_size=128))
def test_owner_tag_is_always_tag_safe(name: str) -> None:
    assert AWS_TAG_VALUE.fullmatch(naming.owner_tag(name))


def test_owner_tag_is_the_same_for_composed_and_decomposed_names_and_differs_between_players() -> None:
    assert naming.owner_tag("jos\u00e9") == naming.owner_tag(unicodedata.normalize("NFD", "jos\u00e9"))
    assert naming.owner_tag("o'brien") != naming.owner_tag("o-brien")
    assert naming.owner_tag("o'brien").startswith("o-brien-")


# --- regions against botocore's partitions -------------------------------------------------------------

COMMERCIAL = "arn:aws:iam::111111111111:role/StackherdExecution"


@pytest.mark.parametrize(
    ("region", "role", "expected"),
    [
        ("us-east-1", COMMERCIAL, None),
        ("eu-central-2", COMMERCIAL, None),
        ("us-gov-west-1", COMMERCIAL, "aws-us-gov partition"),
        ("cn-north-1", COMMERCIAL, "aws-cn partition"),
        ("xx-fake-1", COMMERCIAL, "not a known region"),
        ("us-gov-west-1", "arn:aws-us-gov:iam::111111111111:role/R", None),
        ("us-east-1", "StackherdExecution", None),
    ],
)
def test_regions_are_checked_against_the_roles_partition(region: str, role: str, expected: str | None) -> None:
    problem = check_regions([region], role)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem and region in problem


def test_a_made_up_region_is_unknown_in_every_partition() -> None:
    assert region_problem("xx-fake-1") is not None and region_problem("eu-west-1") is None


# --- SDK errors, classified once -------------------------------------------------------------------------


def client_error(code: str, status: int, message: str = "boom") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},  # type: ignore[typeddict-item]
        "DescribeStacks",
    )


@pytest.mark.parametrize(
    ("error", "kind", "code"),
    [
        (ResponseParserError("Unable to parse response (not well-formed)"), TransientError, "ResponseParse"),
        (
            EndpointConnectionError(endpoint_url="https://cloudformation.us-east-1.amazonaws.com"),
            TransientError,
            "Network",
        ),
        (ReadTimeoutError(endpoint_url="https://x"), TransientError, "Network"),
        (client_error("SomethingNew", 503), TransientError, "SomethingNew"),
        (client_error("ValidationError", 400), PermanentError, "ValidationError"),
        (InvalidRegionError(region_name="us-east-\u0661"), UnknownRegionError, "UnknownRegion"),
        (UnknownEndpointError(service_name="cloudformation", region_name="xx"), UnknownRegionError, "UnknownRegion"),
        (NoRegionError(), UnknownRegionError, "UnknownRegion"),
    ],
)
def test_sdk_errors_are_classified_in_one_place(error: Exception, kind: type, code: str) -> None:
    classified = classify_exception(error, "DescribeStacks")
    assert isinstance(classified, kind) and classified.code == code


def test_a_defect_is_not_taken_for_an_sdk_error() -> None:
    assert classify_exception(KeyError("x")) is None


def test_a_connection_failure_to_a_made_up_region_is_permanent() -> None:
    from reconciler.adapters.aws import translated

    with pytest.raises(UnknownRegionError, match="xx-fake-1"), translated("DescribeStacks", "xx-fake-1"):
        raise EndpointConnectionError(endpoint_url="https://cloudformation.xx-fake-1.amazonaws.com")
    with pytest.raises(TransientError), translated("DescribeStacks", "us-east-1"):
        raise EndpointConnectionError(endpoint_url="https://cloudformation.us-east-1.amazonaws.com")
