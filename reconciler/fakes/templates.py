"""A template catalog of known versions, for the fake cloud."""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.errors import TemplateNotFoundError
from reconciler.rendering import template_url
from reconciler.stacks import TemplateVersion


class StaticTemplateCatalog:
    """A catalog of known versions, for the fake cloud. A version published with `add` knows its declared
    parameters (with defaults) and required capabilities; one only named in `versions` knows neither."""

    def __init__(
        self, bucket: str = "stackherd-templates", versions: tuple[str, ...] = ("v1",), region: str = "us-east-1"
    ) -> None:
        self.bucket = bucket
        self.region = region
        self.published = set(versions)
        self.declared: dict[str, TemplateVersion] = {}

    def add(
        self, version: str, parameters: Mapping[str, str | None] | None = None, capabilities: tuple[str, ...] = ()
    ) -> TemplateVersion:
        self.published.add(version)
        described = TemplateVersion(
            version, self.url(version), dict(parameters) if parameters is not None else None, tuple(capabilities)
        )
        self.declared[version] = described
        return described

    def url(self, version: str) -> str:
        return template_url(self.bucket, version, self.region)

    def url_for(self, version: str) -> str:
        if version not in self.published:
            raise TemplateNotFoundError(
                f"template version {version!r} is not published; publish it with "
                f"`stackherd templates publish FILE --version {version}`"
            )
        return self.url(version)

    def describe(self, version: str) -> TemplateVersion:
        url = self.url_for(version)
        return self.declared.get(version) or TemplateVersion(version, url)
