"""A stubbed AWS endpoint for the benchmarks: real boto3 clients (serializing, signing, parsing every call)
whose HTTP requests are answered in-process by a `before-send` hook instead of the network.

It answers what a worker's steady pass and the dispatcher send: STS AssumeRole (credentials whose access
key names the account, `ASIA<account>`), CloudFormation DescribeStacks (the account's stacks, as `stacks_for`
says), and SQS SendMessageBatch (every entry accepted, with the MD5 botocore checks).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

import boto3
from botocore.awsrequest import AWSResponse

_CREDENTIAL = re.compile(r"Credential=ASIA(\d{12})")
_CFN_NS = "http://cloudformation.amazonaws.com/doc/2010-05-15/"
_STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"

#: account id -> the stacks DescribeStacks lists: (name, status, parameters, tags) each
StacksFor = Callable[[str], list[tuple[str, str, dict[str, str], dict[str, str]]]]


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def _response(url: str, body: str, content_type: str) -> AWSResponse:
    return AWSResponse(url, 200, {"Content-Type": content_type, "x-amzn-RequestId": "stub"}, _Raw(body.encode()))


def _members(name: str, items: dict[str, str], key: str, value: str) -> str:
    inner = "".join(
        f"<member><{key}>{escape(k)}</{key}><{value}>{escape(v)}</{value}></member>" for k, v in items.items()
    )
    return f"<{name}>{inner}</{name}>"


def _describe_stacks(account: str, region: str, stacks_for: StacksFor) -> str:
    members = []
    for name, status, parameters, tags in stacks_for(account):
        members.append(
            "<member>"
            f"<StackName>{name}</StackName>"
            f"<StackId>arn:aws:cloudformation:{region}:{account}:stack/{name}/0</StackId>"
            f"<StackStatus>{status}</StackStatus>"
            "<CreationTime>2026-01-01T00:00:00Z</CreationTime>"
            + _members("Parameters", parameters, "ParameterKey", "ParameterValue")
            + _members("Tags", tags, "Key", "Value")
            + "</member>"
        )
    return (
        f'<DescribeStacksResponse xmlns="{_CFN_NS}"><DescribeStacksResult><Stacks>{"".join(members)}</Stacks>'
        "</DescribeStacksResult><ResponseMetadata><RequestId>stub</RequestId></ResponseMetadata>"
        "</DescribeStacksResponse>"
    )


def _assume_role(account: str) -> str:
    expiration = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f'<AssumeRoleResponse xmlns="{_STS_NS}"><AssumeRoleResult><Credentials>'
        f"<AccessKeyId>ASIA{account}</AccessKeyId><SecretAccessKey>secret{account}</SecretAccessKey>"
        f"<SessionToken>token{account}</SessionToken><Expiration>{expiration}</Expiration>"
        f"</Credentials><AssumedRoleUser><AssumedRoleId>AROA:{account}</AssumedRoleId>"
        f"<Arn>arn:aws:sts::{account}:assumed-role/StackherdExecution/s</Arn></AssumedRoleUser>"
        "</AssumeRoleResult><ResponseMetadata><RequestId>stub</RequestId></ResponseMetadata></AssumeRoleResponse>"
    )


def _send_message_batch(body: dict[str, Any]) -> str:
    successful = [
        {
            "Id": entry["Id"],
            "MessageId": f"m-{entry['Id']}",
            "MD5OfMessageBody": hashlib.md5(entry["MessageBody"].encode()).hexdigest(),
            "SequenceNumber": "1",
        }
        for entry in body["Entries"]
    ]
    return json.dumps({"Successful": successful, "Failed": []})


def install(session: boto3.Session, stacks_for: StacksFor | None = None) -> None:
    """Answer the session's clients' requests in-process (clients made after this call)."""
    lister: StacksFor = stacks_for or (lambda _account: [])

    def answer(request: Any, **_: Any) -> AWSResponse:
        url = request.url
        body = request.body or b""
        text = body.decode() if isinstance(body, bytes) else str(body)
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else target
        if target == "AmazonSQS.SendMessageBatch":
            return _response(url, _send_message_batch(json.loads(text)), "application/x-amz-json-1.0")
        form = {k: v[0] for k, v in parse_qs(text).items()}
        action = form.get("Action")
        if action == "AssumeRole":
            account = form["RoleArn"].split(":")[4]
            return _response(url, _assume_role(account), "text/xml")
        if action == "DescribeStacks":
            authorization = request.headers.get("Authorization", b"")
            authorization = authorization.decode() if isinstance(authorization, bytes) else authorization
            found = _CREDENTIAL.search(authorization)
            region = url.split(".")[1] if url.count(".") >= 3 else "us-east-1"
            return _response(url, _describe_stacks(found.group(1) if found else "", region, lister), "text/xml")
        raise AssertionError(f"the stubbed endpoint does not answer {action or target or url}")

    session._session.register("before-send", answer)
