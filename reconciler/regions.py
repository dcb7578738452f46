"""Which regions exist, per AWS partition, as botocore's endpoint data knows them: the check behind
registering a tenant's regions and behind connecting to one. Partitions botocore lists no regions for
are not judged (a name that only looks like a region is all that can be checked there)."""

from __future__ import annotations

import functools

import boto3

#: The service whose regions are asked for: a region without CloudFormation is no use to stackherd.
_SERVICE = "cloudformation"


@functools.cache
def _session() -> boto3.session.Session:
    return boto3.session.Session()


@functools.cache
def partitions() -> tuple[str, ...]:
    return tuple(_session().get_available_partitions())


@functools.cache
def known_regions(partition: str) -> frozenset[str] | None:
    """The regions of `partition`, or None when botocore knows none for it (it cannot judge them)."""
    if partition not in partitions():
        return None
    regions = frozenset(_session().get_available_regions(_SERVICE, partition_name=partition))
    return regions or None


def partition_of(role_arn: str) -> str:
    """The partition of a role ARN (`arn:<partition>:iam::...`); a bare role name is in `aws`."""
    parts = role_arn.split(":")
    return parts[1] if len(parts) > 1 and parts[0] == "arn" and parts[1] else "aws"


def region_problem(region: str, partition: str | None = None) -> str | None:
    """Why `region` cannot be used with a role of `partition` (None: any partition), or None when it can."""
    homes = [p for p in partitions() if (known_regions(p) or frozenset()) >= {region}]
    if partition is None:
        if homes or not any(known_regions(p) for p in partitions()):
            return None
        return f"region {region!r} is not a known AWS region; check its spelling (for example us-east-1)"
    known = known_regions(partition)
    if known is None or region in known:
        return None
    if homes:
        return (
            f"region {region!r} is in the {homes[0]} partition, but the tenant's role is in the {partition} "
            f"partition, whose credentials cannot act there: use a region of {partition}, or register the tenant "
            f"with a role of {homes[0]} (arn:{homes[0]}:iam::ACCOUNT:role/NAME)"
        )
    sample = ", ".join(sorted(known)[:3])
    return (
        f"region {region!r} is not a known region of the {partition} partition (such as {sample}); check its spelling"
    )


def check_regions(regions: tuple[str, ...] | list[str], role_arn: str) -> str | None:
    """The first problem with any of a tenant's regions for its role, or None."""
    partition = partition_of(role_arn)
    for region in regions:
        problem = region_problem(region, partition)
        if problem:
            return problem
    return None
