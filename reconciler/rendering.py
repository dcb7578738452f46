"""Render a desired record into the stack spec CloudFormation should hold. Pure."""

from __future__ import annotations

from urllib.parse import quote

from models.records import DesiredServer, Tenant
from reconciler import naming
from reconciler.stacks import StackSpec


def template_key(version: str) -> str:
    """Where template version `version` lives in the template bucket."""
    return f"gameserver/{version}.yaml"


def template_url(bucket: str, version: str, region: str | None = None, object_version: str | None = None) -> str:
    """The virtual-hosted S3 URL of a version. With the bucket's region it is the regional form
    (`https://<bucket>.s3.<region>.amazonaws.com/<key>`), the one that works for a bucket in any region,
    opt-in regions included; CloudFormation and moto both resolve it. Without, the legacy global form.
    With `object_version` (the S3 VersionId recorded when the version was published) the URL names that
    object version (`?versionId=`): CloudFormation then reads that body even if the key was overwritten since."""
    host = f"{bucket}.s3.{region}.amazonaws.com" if region else f"{bucket}.s3.amazonaws.com"
    url = f"https://{host}/{template_key(version)}"
    if object_version:
        url += "?versionId=" + quote(object_version, safe="")
    return url


def server_region(tenant: Tenant, server: DesiredServer) -> str:
    return server.region or tenant.primary_region


def render(tenant: Tenant, server: DesiredServer, *, installation: str, url: str) -> StackSpec:
    """The stack that `server` should be: deterministic in the record and the tenant's pinned template."""
    return StackSpec(
        name=naming.stack_name(installation, tenant.tenant_id, server.gameserver_id),
        region=server_region(tenant, server),
        template_url=url,
        parameters=server.valid_config().parameters(),
        tags={
            naming.TAG_INSTALLATION: installation,
            naming.TAG_TENANT: tenant.tenant_id,
            naming.TAG_GAMESERVER: server.gameserver_id,
            naming.TAG_GENERATION: str(server.generation),
            naming.TAG_TEMPLATE_VERSION: tenant.template_version,
            naming.TAG_OWNER: naming.owner_tag(server.username),
            # CloudFormation refuses an empty tag value; every record written since incarnations has one.
            **({naming.TAG_INCARNATION: server.incarnation} if server.incarnation else {}),
        },
    )
