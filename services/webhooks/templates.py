"""Webhook templates: a folder of `<event type>.http` files (`format = template`, `templates =
FOLDER`) or a preset's (`format = zammad`, …: `presets/`), compiled at start-up by Jinja2's
sandbox with strict undefined names, so that a mistake stops the service naming its file and line
instead of failing one delivery at a time. What a rendering means: `rendering.py`.

Bounds: a template file at most 64 kB; a rendering at most 1 MB of output and 1 s, its ranges
10,000 items in all, `*` and `**` refused past those sizes. An event type without a file is not
sent to the endpoint.
"""

import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from shared.events import Message
from shared.settings import PRESETS, ConfigError, EndpointSettings

from .filters import FILTERS

PRESET_FOLDER = Path(__file__).parent / "presets"
SUFFIX = ".http"
FILE_LIMIT = 64 * 1024
OUTPUT_LIMIT = 1024 * 1024
TIME_LIMIT = 1.0
ITEMS_LIMIT = 10_000
EVENT_TYPES = frozenset(cls.model_fields["type"].default for cls in get_args(get_args(Message)[0]))


@functools.cache
def types_of(endpoint_format: str, folder: Path | None) -> frozenset[str]:
    """The event types a templated endpoint has a file for (what it wants of its `events`)."""
    where = PRESET_FOLDER / endpoint_format if endpoint_format in PRESETS else folder
    return frozenset(p.name.removesuffix(SUFFIX) for p in where.glob(f"*{SUFFIX}")) if where else frozenset()


class RenderError(Exception):
    """A template failed on one event (an undefined name, a bound passed): the delivery is
    dead-lettered with this reason."""


class _Bounded(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        sizes = [len(x) for x in (left, right) if isinstance(x, str | list | tuple)]
        factors = [abs(x) for x in (left, right) if isinstance(x, int)]
        if operator == "**" and factors and factors[-1] > 64:
            raise RenderError("an exponent over 64 in a template")
        if operator == "*" and sizes and factors and sizes[0] * factors[0] > OUTPUT_LIMIT:
            raise RenderError("a repetition over 1 MB in a template")
        return super().call_binop(context, operator, left, right)


@dataclass(frozen=True)
class TemplateSet:
    origin: str  # the preset's name, or the folder
    templates: dict[str, jinja2.Template]  # event type → its template

    @classmethod
    def of(cls, endpoint: EndpointSettings) -> "TemplateSet":
        """The endpoint's templates, compiled; a ConfigError names the file and line at fault."""
        preset = endpoint.format in PRESETS
        folder = PRESET_FOLDER / endpoint.format if preset else endpoint.templates
        assert folder is not None, "templates: checked by the settings"
        if not folder.is_dir():
            raise ConfigError(f"templates = {folder}: not a folder")
        env = _Bounded(loader=jinja2.FileSystemLoader(folder), undefined=jinja2.StrictUndefined)
        env.filters.update(FILTERS)
        return cls(endpoint.format if preset else str(folder), dict(_compiled(env, folder)))

    @property
    def types(self) -> frozenset[str]:
        return frozenset(self.templates)

    def render(self, event_type: str, context: dict[str, Any]) -> str | None:
        """The request's text for an event of `event_type`, or None when no file is for it."""
        template = self.templates.get(event_type)
        if template is None:
            return None
        budget = _Budget()
        try:
            return "".join(budget.chunks(template.generate({**context, "range": budget.range})))
        except Exception as error:  # an undefined name, a bound, a filter given the wrong thing
            where = f"{self.origin}/{event_type}{SUFFIX}"
            raise RenderError(f"{where}: {type(error).__name__}: {error}") from None


def _compiled(env: jinja2.Environment, folder: Path) -> Iterator[tuple[str, jinja2.Template]]:
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        event_type = path.name.removesuffix(SUFFIX)
        if event_type not in EVENT_TYPES:
            raise ConfigError(
                f"{path}: no event type {event_type!r} (one of {', '.join(sorted(EVENT_TYPES))})"
            )
        if path.stat().st_size > FILE_LIMIT:
            raise ConfigError(f"{path}: over {FILE_LIMIT // 1024} kB")
        try:
            yield event_type, env.get_template(path.name)
        except jinja2.TemplateSyntaxError as error:
            raise ConfigError(f"{path}, line {error.lineno}: {error.message}") from None


class _Budget:
    """One rendering's allowance: output, time and range items."""

    def __init__(self) -> None:
        self._items = ITEMS_LIMIT
        self._deadline = time.monotonic() + TIME_LIMIT

    def range(self, *bounds: int) -> range:
        items = range(*bounds)
        self._items -= len(items)
        if self._items < 0:
            raise RenderError(f"over {ITEMS_LIMIT:,} range items in one rendering")
        return items

    def chunks(self, parts: Iterator[str]) -> Iterator[str]:
        size = 0
        for part in parts:
            size += len(part)
            if size > OUTPUT_LIMIT or time.monotonic() > self._deadline:
                raise RenderError(f"a rendering over {OUTPUT_LIMIT // 1024} kB or {TIME_LIMIT:g} s")
            yield part
