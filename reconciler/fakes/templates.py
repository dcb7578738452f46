"""A template catalog of known versions, for the fake cloud, with the semantics of the S3 catalog: a versioned
bucket in memory where each published version is pinned to the object version its upload created and to the
body's SHA-256. Overwriting a key adds an object version and leaves the pin (and so every URL) as it was; a
pinned body that no longer matches its digest, or a version that was never pinned, is refused."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping

from reconciler.errors import (
    TemplateIntegrityError,
    TemplateNotFoundError,
    TemplateUnpinnedError,
    TemplateVersionExistsError,
)
from reconciler.rendering import template_url
from reconciler.stacks import TemplateVersion

log = logging.getLogger("stackherd.templates")


def _body(version: str) -> bytes:
    """The body a version published by name only holds."""
    return f"# game-server template {version}\n".encode()


class StaticTemplateCatalog:
    """A catalog of known versions, for the fake cloud. A version published with `add` knows its declared
    parameters (with defaults) and required capabilities; one only named in `versions` (or added to
    `published`) knows neither. Either is pinned to the first object version of its key."""

    def __init__(
        self, bucket: str = "stackherd-templates", versions: tuple[str, ...] = ("v1",), region: str = "us-east-1"
    ) -> None:
        self.bucket = bucket
        self.region = region
        #: Versions published (and so pinned); a test may add names here directly.
        self.published = set(versions)
        self.declared: dict[str, TemplateVersion] = {}
        #: The object versions of each version's key, oldest first: object version ids are "1", "2", ...
        self.objects: dict[str, list[bytes]] = {}
        #: version -> (pinned object version, SHA-256 of its body), as the record beside the body holds it.
        self.pins: dict[str, tuple[str, str]] = {}
        #: Versions whose key holds another object than the pinned one: version -> what it holds now.
        self.overwritten: dict[str, str] = {}
        self._described: dict[
            str, tuple[tuple[str, str], list[bytes], int, bytes, TemplateVersion | None, TemplateVersion]
        ] = {}
        self._lock = threading.RLock()

    # --- publishing and what happens to the bucket afterwards --------------------------------------------

    def add(
        self,
        version: str,
        parameters: Mapping[str, str | None] | None = None,
        capabilities: tuple[str, ...] = (),
        *,
        body: bytes | None = None,
    ) -> TemplateVersion:
        self.publish(body if body is not None else _body(version), version)
        described = TemplateVersion(
            version, self.url(version), dict(parameters) if parameters is not None else None, tuple(capabilities)
        )
        self.declared[version] = described
        return described

    def publish(self, body: bytes, version: str) -> str:
        """What the S3 catalog's `publish` does: a new version is uploaded and pinned; the same body again is a
        no-op; a different body is refused; the same body of an unpinned upload records its pin."""
        digest = hashlib.sha256(body).hexdigest()
        with self._lock:
            pinned = self._pin(version)
            if pinned is not None:
                if pinned[1] != digest:
                    raise TemplateVersionExistsError(
                        f"template version {version!r} is already published with a different body, and a version "
                        "never changes; publish it as a new version"
                    )
                return self.url(version)
            stored = self.objects.get(version)
            if stored is None:
                self.objects[version] = [body]
            elif stored[-1] != body:
                raise TemplateVersionExistsError(
                    f"template version {version!r} is already published with a different body, and a version "
                    "never changes; publish it as a new version"
                )
            self.pins[version] = (str(len(self.objects[version])), digest)
            self.published.add(version)
        return self.url(version)

    def upload_unpinned(self, version: str, body: bytes | None = None) -> None:
        """A body put in the bucket without publishing (before versions were pinned, or with `aws s3 cp`)."""
        with self._lock:
            self.objects.setdefault(version, []).append(body if body is not None else _body(version))

    def overwrite(self, version: str, body: bytes) -> str:
        """`aws s3 cp` onto a published key: a new object version; the pin stays. Returns its id."""
        with self._lock:
            self._pin(version)
            self.objects.setdefault(version, []).append(body)
            return str(len(self.objects[version]))

    def corrupt(self, version: str, body: bytes) -> None:
        """The pinned object version's body changes in place (what an overwrite does to a bucket whose
        versioning is suspended): its digest no longer matches."""
        with self._lock:
            pinned = self._pin(version)
            assert pinned is not None, f"{version} is not published"
            self.objects[version][int(pinned[0]) - 1] = body

    def _pin(self, version: str) -> tuple[str, str] | None:
        """The version's pin; a version only named in `published` is pinned to its name-only body here."""
        if version in self.published and version not in self.pins:
            body = _body(version)
            self.objects.setdefault(version, []).insert(0, body)
            self.pins[version] = ("1", hashlib.sha256(body).hexdigest())
        return self.pins.get(version)

    # --- the catalog ------------------------------------------------------------------------------------

    def url(self, version: str) -> str:
        """The pinned URL of a published version."""
        with self._lock:
            pinned = self._pin(version)
        return template_url(self.bucket, version, self.region, pinned[0] if pinned else None)

    def url_for(self, version: str) -> str:
        with self._lock:
            pinned = self._pin(version)
            uploaded = version in self.objects
        if pinned is None:
            if uploaded:
                raise TemplateUnpinnedError.for_version(version)
            raise TemplateNotFoundError(
                f"template version {version!r} is not published; publish it with "
                f"`stackherd templates publish FILE --version {version}`"
            )
        return self.url(version)

    def versions(self) -> list[str]:
        with self._lock:
            return sorted(self.published | set(self.objects))

    def describe(self, version: str) -> TemplateVersion:
        # What the last describe of this version found, while nothing it depends on has been replaced: the same
        # pin, the same list of object versions and pinned body (kept, so its identity cannot be reused), the
        # same declaration. Every pass describes its tenant's version, and hashing the body each time is the
        # catalog's whole cost; `corrupt`, `overwrite` and a new pin each replace one of these.
        memo = self._described.get(version)
        if memo is not None:
            pin, objects, count, body, declared, described = memo
            if (
                self.pins.get(version) is pin
                and self.objects.get(version) is objects
                and len(objects) == count
                and objects[int(pin[0]) - 1] is body
                and self.declared.get(version) is declared
            ):
                return described
        described = self._describe(version)
        with self._lock:
            pin = self.pins[version]
            objects = self.objects[version]
            if len(objects) == int(pin[0]):  # not overwritten: describing it again logs nothing
                body = objects[int(pin[0]) - 1]
                self._described[version] = (pin, objects, len(objects), body, self.declared.get(version), described)
        return described

    def _describe(self, version: str) -> TemplateVersion:
        url = self.url_for(version)
        with self._lock:
            object_version, digest = self.pins[version]
            objects = self.objects[version]
            found = hashlib.sha256(objects[int(object_version) - 1]).hexdigest()
            latest = str(len(objects))
        if found != digest:
            raise TemplateIntegrityError.digest_mismatch(version, object_version, found, digest)
        if latest != object_version:
            with self._lock:
                self.overwritten[version] = latest
            log.error(
                "template version %s was overwritten after publishing (it now holds %s, the pinned object version "
                "is %s); stacks keep being created and updated with the pinned body",
                version,
                latest,
                object_version,
            )
        return self.declared.get(version) or TemplateVersion(version, url)
