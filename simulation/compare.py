"""Classic webhooks compared with what was expected (`callbridge scenario check`). Pure.

Both sides are JSON lines: a call event's query parameters as a flat object, a recording POST's
body as it is (`docs/scenarios.md`, "Expected webhooks"). They are compared chain by chain (the
id without its link number), each chain in order, except where the contract leaves the order
open: the `ringing` events of one link that follow each other, and a chain's recording POSTs
that follow each other, may come in any order among themselves. Chains are independent.

An expected line may say `title_contains: [...]` instead of a `title`: the actual title must then
contain each of those strings, and neither callback phrase that the list does not name. Recording
files are compared by file name (the link's base address and token may differ).
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

CALLBACK_PHRASES = ("callback requested", "no callback")
Webhook = dict[str, Any]


class ExpectationError(ValueError):
    """A line that is not a webhook object with an id."""


def read_webhooks(lines: Iterable[str], source: str) -> list[Webhook]:
    webhooks = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise ExpectationError(f"{source}:{number}: not JSON ({error.msg})") from None
        if not isinstance(item, dict) or "id" not in item:
            raise ExpectationError(
                f"{source}:{number}: not a webhook object with an id: {line.strip()[:100]}"
            )
        webhooks.append(item)
    return webhooks


@dataclass(frozen=True)
class Comparison:
    chains: int
    differences: dict[str, list[str]]  # chain → what differs, for the chains that do not match

    @property
    def matched(self) -> bool:
        return not self.differences

    def report(self) -> str:
        lines = []
        for chain, problems in self.differences.items():
            lines.append(f"chain {chain}:")
            lines.extend(f"  {problem}" for problem in problems)
        lines.append(f"{self.chains - len(self.differences)} of {self.chains} call chains match")
        return "\n".join(lines)


def compare(expected: Sequence[Webhook], actual: Sequence[Webhook]) -> Comparison:
    chains: dict[str, tuple[list[Webhook], list[Webhook]]] = {}
    for side, webhooks in enumerate((expected, actual)):
        for webhook in webhooks:
            chains.setdefault(chain_of(webhook), ([], []))[side].append(webhook)
    differences = {}
    for chain, (wanted, got) in chains.items():
        problems = _compare_chain(wanted, got)
        if problems:
            differences[chain] = problems
    return Comparison(len(chains), differences)


def chain_of(webhook: Webhook) -> str:
    return str(webhook["id"]).rsplit("-", 1)[0]


def _groups(webhooks: list[Webhook]) -> list[list[Webhook]]:
    """Runs of webhooks whose order among themselves is open; every other webhook alone."""
    groups: list[list[Webhook]] = []
    previous: tuple[str, ...] | None = None
    for webhook in webhooks:
        key = _unordered(webhook)
        if key is not None and key == previous:
            groups[-1].append(webhook)
        else:
            groups.append([webhook])
        previous = key
    return groups


def _unordered(webhook: Webhook) -> tuple[str, ...] | None:
    if "FILES" in webhook:
        return ("recordings",)
    if webhook.get("event") == "ringing":
        return ("ringing", str(webhook["id"]))
    return None


def _compare_chain(wanted: list[Webhook], got: list[Webhook]) -> list[str]:
    expected_groups, actual_groups = _groups(wanted), _groups(got)
    for index, expected_group in enumerate(expected_groups):
        if index >= len(actual_groups):
            return [f"missing: {_show(group)}" for group in expected_groups[index:]]
        actual_group = list(actual_groups[index])
        if len(expected_group) != len(actual_group):
            return [f"expected {_show(expected_group)}, got {_show(actual_group)}"]
        for item in expected_group:
            reasons = [_difference(item, candidate) for candidate in actual_group]
            if None not in reasons:
                return [f"expected {_show([item])}; the closest differs: {reasons[0]}"]
            actual_group.pop(reasons.index(None))
    return [f"unexpected: {_show(group)}" for group in actual_groups[len(expected_groups) :]]


def _difference(expected: Webhook, actual: Webhook) -> str | None:
    """None when `actual` is what `expected` describes, else what differs."""
    fields = {key: value for key, value in expected.items() if key != "title_contains"}
    keys = set(fields) | ({"title"} if "title_contains" in expected else set())
    if set(actual) != keys:
        return f"fields {sorted(actual)}, expected {sorted(keys)}"
    for key, value in fields.items():
        if key == "FILES":
            if not isinstance(actual[key], list) or _files(actual[key]) != _files(value):
                return f"FILES {_files(actual[key])}, expected {_files(value)}"
        elif str(actual[key]) != str(value):
            return f"{key} {actual[key]!r}, expected {value!r}"
    if "title_contains" in expected:
        return _title_difference(str(actual["title"]), [str(part) for part in expected["title_contains"]])
    return None


def _title_difference(title: str, parts: list[str]) -> str | None:
    """None when `title` holds every one of `parts` and no callback phrase they do not name."""
    for part in parts:
        if part not in title:
            return f"title {title!r} does not contain {part!r}"
    for phrase in CALLBACK_PHRASES:
        if phrase in title and phrase not in parts:
            return f"title {title!r} says {phrase!r}"
    return None


def _files(urls: Any) -> list[str]:
    return [urlsplit(str(url)).path.rsplit("/", 1)[-1] for url in urls] if isinstance(urls, list) else []


def _show(group: list[Webhook]) -> str:
    return json.dumps(group if len(group) > 1 else group[0])
