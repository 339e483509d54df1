"""Scenario files (docs/scenarios.md): YAML in, a validated `Scenario` out.

This module checks the form of a file: required fields, types, non-decreasing `t`, a directory
that holds together. Whether a step makes sense at its moment (answering a phone that is not
ringing) is the simulator's check. Every error is a `ScenarioError` naming the file and step.
"""

import contextlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shared.directory import FORWARDING_PROFILES, RECORDING_OPTIONS, Directory


class ScenarioError(Exception):
    pass


# do → (required fields, fields that hold an external phone number and must be quoted strings)
STEP_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "incoming": (frozenset({"call", "from", "did", "to"}), frozenset({"from"})),
    "outgoing": (frozenset({"call", "from", "to"}), frozenset({"to"})),
    "internal": (frozenset({"call", "from", "to"}), frozenset()),
    "route": (frozenset({"call", "to"}), frozenset()),
    "ring": (frozenset({"call", "dn"}), frozenset()),
    "stop_ring": (frozenset({"call", "dn"}), frozenset()),
    "answer": (frozenset({"call", "dn"}), frozenset()),
    "transfer": (frozenset({"call", "by", "to"}), frozenset()),
    "consult": (frozenset({"call", "by", "to", "consult"}), frozenset()),
    "complete": (frozenset({"call", "consult"}), frozenset()),
    "hold": (frozenset({"call", "by"}), frozenset()),
    "resume": (frozenset({"call", "by"}), frozenset()),
    "reconnect": (frozenset({"call", "dn"}), frozenset()),
    "callback": (frozenset({"call"}), frozenset()),
    "hangup": (frozenset({"call", "by"}), frozenset()),
    "register": (frozenset({"dn"}), frozenset()),
    "unregister": (frozenset({"dn"}), frozenset()),
    "set_forwarding": (frozenset({"dn", "profile"}), frozenset()),
    "queue_login": (frozenset({"dn", "queue", "on"}), frozenset()),
    # callbridge's own steps (what the API's commands do on the simulator; usable in scenarios too)
    "makecall": (frozenset({"call", "from", "to"}), frozenset({"to"})),
    "set_options": (frozenset({"dn", "enabled", "external", "recording"}), frozenset()),
}
BOOLEAN_FIELDS = {("queue_login", "on"), ("set_options", "enabled"), ("set_options", "external")}


@dataclass(frozen=True, slots=True)
class Step:
    """One scenario step; `fields` hold strings, `dn` of `ring` a tuple, `on` of `queue_login` a bool."""

    index: int
    t: float
    do: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def describe(self) -> str:
        """Where an error happened: the step of a scenario file, or the command (index -1)."""
        return self.do if self.index < 0 else f"step {self.index} (t={self.t:g}, {self.do})"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    start: datetime  # naive: PBX local time
    first_call_number: int
    directory: Directory
    steps: tuple[Step, ...]


MAX_T = 366 * 86400.0  # a scenario spans at most a year


def load_yaml(text: str) -> Any:
    """YAML's safe subset, parsed by libyaml where PyYAML has it (a directory of 20,000
    extensions: 0.8 s instead of 3.2 s, and a third less memory at the peak); what libyaml
    refuses is parsed again by the pure-Python parser, whose errors say more plainly what is
    wrong (nesting too deep, for one). A document in JSON (YAML's subset) is read by the json
    module: libyaml's nodes leave the heap fragmented (a 20,000-extension directory, 1.2 MB of
    YAML, left 50 MB more in the process than the same in JSON)."""
    if text.lstrip().startswith("{"):
        with contextlib.suppress(ValueError):
            return json.loads(text)
    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return yaml.safe_load(text)


def read_yaml(path: Path, what: str) -> Any:
    """A YAML file's content; ScenarioError in one line when it cannot be read."""
    try:
        return load_yaml(path.read_text(encoding="utf-8-sig"))
    except OSError as error:
        raise ScenarioError(f"{what}{path}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{what}{path}: not a text file (UTF-8)") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ScenarioError(f"{what}{path}: not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise ScenarioError(f"{what}{path}: nested too deeply") from None


def load_scenario(path: Path) -> Scenario:
    document = read_yaml(path, "")
    try:
        return parse_scenario(document, base=path.parent)
    except ScenarioError as error:
        raise ScenarioError(f"{path}: {error}") from None


def parse_scenario(document: Any, base: Path) -> Scenario:
    if not isinstance(document, dict):
        raise ScenarioError("a scenario is a mapping with name, start, steps")
    unknown = set(document) - {"name", "start", "first_call_number", "directory", "steps"}
    if unknown:
        raise ScenarioError(f"unknown top-level field(s): {', '.join(sorted(map(str, unknown)))}")
    start = parse_start(document.get("start"))
    first = document.get("first_call_number", 1)
    if not isinstance(first, int) or isinstance(first, bool) or first < 1:
        raise ScenarioError(f"first_call_number must be a positive whole number, not {first!r}")
    raw_steps = document.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ScenarioError("steps must be a non-empty list")
    steps = tuple(_step(index, raw) for index, raw in enumerate(raw_steps, 1))
    for earlier, later in itertools.pairwise(steps):
        if later.t < earlier.t:
            raise ScenarioError(f"{later.describe()}: t goes backwards (after t={earlier.t:g})")
    try:
        start + timedelta(seconds=steps[-1].t)
    except OverflowError:
        raise ScenarioError(f"start {start.isoformat()}: the steps would run past the year 9999") from None
    directory = load_directory_source(document.get("directory"), base)
    return Scenario(str(document.get("name", "")), start, first, directory, steps)


def parse_start(value: Any) -> datetime:
    """A scenario's `start`: naive PBX local time."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ScenarioError(f"start {value!r} is not an ISO date and time") from None
    else:
        raise ScenarioError('start is required: the PBX local time at t = 0, e.g. "2021-12-30T10:06:14"')
    if parsed.tzinfo is not None:
        raise ScenarioError("start is PBX local time: give it without a UTC offset")
    return parsed


def _step(index: int, raw: Any) -> Step:
    where = f"step {index}"
    if not isinstance(raw, dict):
        raise ScenarioError(f'{where}: a step is a mapping such as {{t: 0, do: ring, call: A, dn: ["101"]}}')
    if True in raw:  # YAML 1.1 reads the key `on` (queue_login) as the boolean true
        raw = {("on" if key is True else key): value for key, value in raw.items()}
    do = raw.get("do")
    if do not in STEP_FIELDS:
        raise ScenarioError(f"{where}: unknown or missing 'do' {do!r} (one of {', '.join(STEP_FIELDS)})")
    t = raw.get("t")
    if not isinstance(t, int | float) or isinstance(t, bool) or not 0 <= t <= MAX_T:
        raise ScenarioError(
            f"{where} ({do}): t must be a number of seconds from 0 to {MAX_T:g} (a year), not {t!r}"
        )
    where = f"step {index} (t={t:g}, {do})"
    required, _ = STEP_FIELDS[do]
    given = set(raw) - {"t", "do"}
    if missing := required - given:
        raise ScenarioError(f"{where}: missing field(s) {', '.join(sorted(missing))}")
    if extra := given - required:
        raise ScenarioError(f"{where}: unexpected field(s) {', '.join(sorted(map(str, extra)))}")
    fields = {key: _field(where, do, key, raw[key]) for key in sorted(required)}
    _check_choices(where, do, fields)
    return Step(index, float(t), do, fields)


def _field(where: str, do: str, key: str, value: Any) -> Any:
    """One field's value, checked for its kind: a list of DNs, a flag, a phone number, a name."""
    if do == "ring" and key == "dn":
        if not isinstance(value, list) or not value:
            raise ScenarioError(f"{where}: dn must be a non-empty list of extensions")
        return tuple(_text(where, key, item) for item in value)
    if (do, key) in BOOLEAN_FIELDS:
        if not isinstance(value, bool):
            raise ScenarioError(f"{where}: {key} must be true or false")
        return value
    if key in STEP_FIELDS[do][1] and not isinstance(value, str):
        raise ScenarioError(f'{where}: {key} is a phone number: quote it ("{value}")')
    return _text(where, key, value)


def _check_choices(where: str, do: str, fields: dict[str, Any]) -> None:
    if do == "set_forwarding" and fields["profile"] not in FORWARDING_PROFILES:
        raise ScenarioError(
            f"{where}: unknown profile {fields['profile']!r} (one of {', '.join(FORWARDING_PROFILES)})"
        )
    if do == "set_options" and fields["recording"] not in RECORDING_OPTIONS:
        raise ScenarioError(
            f"{where}: unknown recording {fields['recording']!r} (one of {', '.join(RECORDING_OPTIONS)})"
        )


def _text(where: str, key: str, value: Any) -> str:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ScenarioError(f"{where}: {key} must be a non-empty string, not {value!r}")


# --- directories ------------------------------------------------------------------------------


def load_directory_source(source: Any, base: Path) -> Directory:
    """A scenario's `directory`: a file name beside it, an inline mapping, or absent (built-in)."""
    if source is None:
        return default_directory()
    if isinstance(source, str):
        return load_directory(base / source)
    if isinstance(source, dict):
        return parse_directory(source, "inline directory")
    raise ScenarioError("directory must be a file name or a mapping")


def load_directory(path: Path) -> Directory:
    return parse_directory(read_yaml(path, "directory "), f"directory {path}")


def default_directory() -> Directory:
    """The built-in directory (simulation/default_directory.yaml, described in the README)."""
    text = resources.files("simulation").joinpath("default_directory.yaml").read_text(encoding="utf-8")
    return parse_directory(load_yaml(text), "built-in directory")


def parse_directory(document: Any, where: str) -> Directory:
    if not isinstance(document, dict):
        raise ScenarioError(f"{where}: a directory is a mapping of extensions, queues, groups, ivrs, lines")
    for extension in document.get("extensions") or []:
        # YAML 1.1 reads an unquoted `off` as false
        if isinstance(extension, dict) and extension.get("recording") is False:
            extension["recording"] = "off"
    try:
        directory = Directory.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors(include_url=False)
        )
        raise ScenarioError(f"{where}: {problems}") from None
    _check_directory(directory, where)
    return directory


def _check_directory(directory: Directory, where: str) -> None:
    numbers: dict[str, str] = {}
    entries = [
        *(("extension", e.number) for e in directory.extensions),
        *(("queue", q.number) for q in directory.queues),
        *(("ring group", g.number) for g in directory.groups),
        *(("IVR", i.number) for i in directory.ivrs),
        *(("line", line.number) for line in directory.lines),
    ]
    for kind, number in entries:
        if number in numbers:
            raise ScenarioError(f"{where}: number {number} is both a {numbers[number]} and a {kind}")
        numbers[number] = kind
    extensions = {e.number for e in directory.extensions}
    for queue in directory.queues:
        if strangers := set(queue.agents) - extensions:
            raise ScenarioError(
                f"{where}: queue {queue.number} has unknown agent(s) {', '.join(sorted(strangers))}"
            )
    for group in directory.groups:
        if strangers := set(group.members) - extensions:
            raise ScenarioError(
                f"{where}: ring group {group.number} has unknown member(s) {', '.join(sorted(strangers))}"
            )
    names = [did.name for line in directory.lines for did in line.dids]
    if duplicated := {name for name in names if names.count(name) > 1}:
        raise ScenarioError(f"{where}: DID name(s) used twice: {', '.join(sorted(duplicated))}")
