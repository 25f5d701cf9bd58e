"""Which installed package a twin entry names: a package is its name, version and content.

The twin names a package by its version and the checksums of its zip, never by its model
name (that is in the zip's manifest). So an installed package is the one the twin wants when
it has that version and:

* its recorded content (the zip's sha256 and MD5, kept since it was installed) matches every
  checksum the twin gives: the same bytes, hence the same name too; or
* nothing can be compared (the twin gives no checksum, or the package has no record: the
  bundled sample, a ``--model`` path, or a version installed before content was recorded),
  and its name is the serving model's: a version alone only ever means another version of
  the model that serves, never a model of another name that happens to have that version.

Anything else is another package: it is downloaded, and the repository refuses it if its
name and version are already installed (:class:`detector_module.updates.repository.Immutable`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from config.detector import DesiredModel
from detector_module.updates.verify import VerifyError, check_digests


@dataclass(frozen=True)
class Content:
    """The checksums of a package's zip, as recorded with the installed version."""

    sha256: str  # hex, lower case
    content_md5: str  # base64, as Azure Storage writes ContentMD5

    @classmethod
    def from_json(cls, text: str) -> Content:
        """ValueError (or KeyError, TypeError) unless ``text`` is a record :meth:`to_json`
        wrote."""
        data = json.loads(text)
        return cls(sha256=str(data["sha256"]).lower(), content_md5=str(data["content_md5"]))

    def to_json(self) -> str:
        return json.dumps({"sha256": self.sha256, "content_md5": self.content_md5})

    def matches(self, desired: DesiredModel) -> bool:
        """Whether every checksum the twin gives is this content's (False when it gives
        none: nothing says they are the same)."""
        if not (desired.sha256 or desired.content_md5):
            return False
        try:
            check_digests(self.content_md5, self.sha256, content_md5=desired.content_md5,
                          sha256=desired.sha256)
        except VerifyError:
            return False
        return True


@dataclass(frozen=True)
class Installed:
    """A package the detector has: in the repository, or serving (then maybe from outside)."""

    name: str
    version: str
    content: Content | None  # None: not recorded


def is_wanted(package: Installed, desired: DesiredModel, serving_name: str | None) -> bool:
    """Whether ``package`` is the one the twin's ``desired`` entry names (see the module
    docstring)."""
    if package.version != desired.version:
        return False
    if package.content is not None and (desired.sha256 or desired.content_md5):
        return package.content.matches(desired)
    return package.name == serving_name
