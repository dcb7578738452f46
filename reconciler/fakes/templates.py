"""A template catalog of known versions, for the fake cloud."""

from __future__ import annotations

from reconciler.errors import TemplateNotFoundError
from reconciler.rendering import template_url


class StaticTemplateCatalog:
    """A catalog of known versions, for the fake cloud."""

    def __init__(self, bucket: str = "stackherd-templates", versions: tuple[str, ...] = ("v1",)) -> None:
        self.bucket = bucket
        self.published = set(versions)

    def url_for(self, version: str) -> str:
        if version not in self.published:
            raise TemplateNotFoundError(
                f"template version {version!r} is not published; publish it with "
                f"`stackherd templates publish FILE --version {version}`"
            )
        return template_url(self.bucket, version)
