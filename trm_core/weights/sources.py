"""Where weights come from, as a user names them: a local path, or ``hf:OWNER/NAME[@REVISION][/PATH]``, a file
of a Hugging Face model repository fetched through ``huggingface_hub`` (its cache, ``HF_HUB_OFFLINE``,
``HF_ENDPOINT`` and token work as everywhere else)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from trm_core.config import ConfigError

HUB = "hf:"
_SPEC = re.compile(r"^hf:(?P<owner>[\w.-]+)/(?P<name>[\w.-]+)(?:@(?P<rev>[\w.-]+))?(?:/(?P<path>.+))?$")


@dataclass(frozen=True)
class HubSpec:
    repo: str
    revision: str | None
    path: str  # a file or folder inside the repository; "" for its top

    def __str__(self) -> str:
        return f"{HUB}{self.repo}" + (f"@{self.revision}" if self.revision else "") + (
            f"/{self.path}" if self.path else "")


def is_hub(text: str) -> bool:
    return text.startswith(HUB)


def parse_hub(text: str, flag: str) -> HubSpec:
    """``hf:OWNER/NAME[@REV][/PATH]``; a revision is a branch, tag or commit without a slash."""
    m = _SPEC.match(text)
    if m is None:
        raise ConfigError(f"{flag} {text!r}: expected hf:OWNER/NAME, hf:OWNER/NAME@REVISION or "
                          f"hf:OWNER/NAME[@REVISION]/PATH")
    path = (m["path"] or "").strip("/")
    for part, what in ((m["owner"], "owner"), (m["name"], "name")):
        if part.startswith(("-", ".")) or ".." in part:
            raise ConfigError(f"{flag} {text!r}: {part!r} is not a repository {what} (it may not start with '-' or "
                              f"'.', nor hold '..')")
    if any(step in ("..", ".", "") for step in path.split("/")) and path:
        raise ConfigError(f"{flag} {text!r}: the path {path!r} must name a file inside the repository (no '..')")
    return HubSpec(f"{m['owner']}/{m['name']}", m["rev"], path)


def hub_file(spec: HubSpec, filename: str, instead: str) -> Path:
    """``filename`` (under ``spec.path``) of the model repository, in the hub's cache."""
    from trm_core.prep.hub import download

    name = f"{spec.path}/{filename}" if spec.path and filename else (filename or spec.path)
    return download(spec.repo, name, spec.revision, "model", instead)
