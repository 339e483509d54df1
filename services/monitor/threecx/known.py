"""What the 3CX driver knows of the PBX's directory between two XAPI loads: the extensions (with
their state), their XAPI user ids, and what changed from one load to the next. Pure."""

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.directory import Directory, Extension

from ..updates import ForwardingUpdate, OptionsUpdate, PbxUpdate, QueueLoginUpdate, RegistrationUpdate


@dataclass
class KnownDirectory:
    directory: Directory = field(default_factory=Directory)
    user_ids: dict[str, int] = field(default_factory=dict)  # extension number → XAPI `Users` id

    def extension(self, number: str) -> Extension:
        return next(e for e in self.directory.extensions if e.number == number)

    def swap(self, extension: Extension, **changes: Any) -> Extension:
        """`extension` with `changes`, in the directory from now on."""
        changed = extension.model_copy(update=changes)
        extensions = tuple(changed if e.number == extension.number else e for e in self.directory.extensions)
        self.directory = self.directory.model_copy(update={"extensions": extensions})
        return changed


def state_changes(before: Directory, after: Directory, now: datetime) -> list[PbxUpdate]:
    """The extensions' state changes from one directory load to the next, as updates."""
    was = {e.number: e for e in before.extensions}
    changes: list[PbxUpdate] = []
    for extension in after.extensions:
        old = was.get(extension.number)
        if old is None:
            continue
        number = extension.number
        if old.registered != extension.registered:
            changes.append(RegistrationUpdate(now, number, extension.registered))
        if old.profile != extension.profile:
            changes.append(ForwardingUpdate(now, number, extension.profile))
        if old.queue_logged_in != extension.queue_logged_in:
            changes.append(QueueLoginUpdate(now, number, "all", extension.queue_logged_in))
        options = (extension.enabled, extension.external, extension.recording)
        if (old.enabled, old.external, old.recording) != options:
            changes.append(OptionsUpdate(now, number, *options))
    return changes


def lower_keys(value: Any) -> Any:
    """3CX's frames and objects come in snake_case, PascalCase or camelCase: read them alike."""
    if not isinstance(value, dict):
        return value
    return {_snake(str(k)): v for k, v in value.items()}


def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()
