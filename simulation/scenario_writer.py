"""Scenarios written out: the traffic generator's calls as a scenario file that `parse_scenario`
reads back, a step a line as the example files are written."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import yaml

from .scenario import Step


def scenario_document(
    steps: Iterable[Step], *, name: str, start: datetime, first_call_number: int = 1, directory: Any = None
) -> dict[str, Any]:
    """A scenario as the YAML mapping `parse_scenario` reads (the traffic generator's, written out);
    times to the millisecond. `directory`: a file name, a mapping, or None for the built-in one."""
    document: dict[str, Any] = {
        "name": name,
        "start": start.replace(microsecond=0).isoformat(),
        "first_call_number": first_call_number,
    }
    if directory is not None:
        document["directory"] = directory
    document["steps"] = [
        {"t": round(step.t, 3), "do": step.do}
        | {key: list(value) if isinstance(value, tuple) else value for key, value in step.fields.items()}
        for step in steps
    ]
    return document


class _Dumper(yaml.SafeDumper):
    """Writes each step on a line of its own, as the example files are written."""


class _OneLine(dict[str, Any]):
    pass


_Dumper.add_representer(
    _OneLine, lambda dumper, data: dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)
)


def dump_scenario(document: dict[str, Any]) -> str:
    """`scenario_document`'s mapping as YAML."""
    steps = [_OneLine(step) for step in document.get("steps", [])]
    return yaml.dump({**document, "steps": steps}, Dumper=_Dumper, sort_keys=False, width=200)
