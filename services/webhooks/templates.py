"""Webhook templates: a folder of `<event type>.http` files (`format = template`, `templates =
FOLDER`) or a preset's (`format = zammad`, …: `presets/`), compiled at start-up by Jinja2's
sandbox with strict undefined names, so that a mistake stops the service naming its file and line
instead of failing one delivery at a time. What a rendering means: `rendering.py`.

Bounds: a template file at most 64 kB; a rendering at most 1 MB of output, 1 s (checked at every
step it takes: each call, attribute, item, operator and filter) and 10,000 range items in all;
a width, repetition or power that would build more than that is refused before it is built. An
event type without a file is not sent to the endpoint.
"""

import functools
import re
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
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
POWER_BITS = 64_000
_BUDGET: ContextVar["_Budget"] = ContextVar("budget")  # the rendering's, in its thread
EVENT_TYPES = frozenset(cls.model_fields["type"].default for cls in get_args(get_args(Message)[0]))


@functools.cache
def types_of(endpoint_format: str, folder: Path | None) -> frozenset[str]:
    """The event types a templated endpoint has a file for (what it wants of its `events`)."""
    where = folder_of(endpoint_format, folder)
    return frozenset(p.name.removesuffix(SUFFIX) for p in where.glob(f"*{SUFFIX}")) if where else frozenset()


def folder_of(endpoint_format: str, folder: Path | None) -> Path | None:
    """A preset's templates, or the endpoint's own folder (`format = template`)."""
    return PRESET_FOLDER / endpoint_format if endpoint_format in PRESETS else folder


class RenderError(Exception):
    """A template failed on one event (an undefined name, a bound passed): the delivery is
    dead-lettered with this reason."""


class _Bounded(SandboxedEnvironment):
    """Jinja2's sandbox (no Python internals) with the rendering's budget (`_BUDGET`) checked
    wherever a template computes: each call, attribute or item read, `*`, `**` and `%`, each
    filter; a width, a repetition or an exponent that would build something over the output
    limit is refused before it is built, and a value over it where it appears."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, folder: Path) -> None:
        super().__init__(loader=jinja2.FileSystemLoader(folder), undefined=jinja2.StrictUndefined)
        self.filters.update(FILTERS)
        self.filters = {name: _bounded(f) for name, f in self.filters.items()}

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        _BUDGET.get().tick()
        powers = operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1
        if powers and right * abs(left).bit_length() > POWER_BITS:
            raise RenderError(f"a power over {POWER_BITS:,} bits")
        sizes = [len(x) for x in (left, right) if isinstance(x, str | list | tuple)]
        factors = [abs(x) for x in (left, right) if isinstance(x, int)]
        if operator == "*" and sizes and factors and sizes[0] * factors[0] > OUTPUT_LIMIT:
            raise RenderError(f"a repetition over {OUTPUT_LIMIT // 1024} kB")
        _check_widths(left if operator == "%" else None)
        return _checked(super().call_binop(context, operator, left, right))

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _BUDGET.get().tick()
        _check_widths(getattr(__obj, "__self__", None), *args, *kwargs.values())
        return _checked(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        _BUDGET.get().tick()
        if attribute in ("format", "format_map"):  # the sandbox wraps them here, not in `call`
            _check_widths(obj)
        return _checked(super().getattr(obj, attribute))

    def getitem(self, obj: Any, argument: Any) -> Any:
        _BUDGET.get().tick()
        return _checked(super().getitem(obj, argument))


_WIDE_FORMAT = re.compile(r"%[-+ #0]*\d{7,}|\{[^{}]*:[^{}]*\d{7,}")  # a width of a million or more


def _check_widths(*values: Any) -> None:
    for value in values:
        too_wide = isinstance(value, int) and not isinstance(value, bool) and value > OUTPUT_LIMIT
        if too_wide or (isinstance(value, str) and _WIDE_FORMAT.search(value)):
            raise RenderError(f"a width over {OUTPUT_LIMIT // 1024} kB")


def _checked(value: Any) -> Any:
    if isinstance(value, str | list | tuple | dict) and len(value) > OUTPUT_LIMIT:
        raise RenderError(f"a value over {OUTPUT_LIMIT // 1024} kB")
    return value


def _bounded(filter_: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(filter_)  # keeps Jinja2's pass_context and the like
    def run(*args: Any, **kwargs: Any) -> Any:
        _check_widths(*args[1:], *kwargs.values())
        _check_widths(args[0] if args and isinstance(args[0], str) else None)
        return _checked(filter_(*args, **kwargs))

    return run


@dataclass(frozen=True)
class TemplateSet:
    origin: str  # the preset's name, or the folder
    templates: dict[str, jinja2.Template]  # event type → its template

    @classmethod
    def of(cls, endpoint: EndpointSettings) -> "TemplateSet":
        """The endpoint's templates, compiled; a ConfigError names the file and line at fault."""
        preset = endpoint.format in PRESETS
        folder = folder_of(endpoint.format, endpoint.templates)
        assert folder is not None, "templates: checked by the settings"
        if not folder.is_dir():
            raise ConfigError(f"templates = {folder}: not a folder")
        env = _Bounded(folder)
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
        mine = _BUDGET.set(budget)  # renderings may run side by side, each in a thread of its own
        try:
            return "".join(budget.chunks(template.generate({**context, "range": budget.range})))
        except Exception as error:  # an undefined name, a bound, a filter given the wrong thing
            where = f"{self.origin}/{event_type}{SUFFIX}"
            raise RenderError(f"{where}: {type(error).__name__}: {error}") from None
        finally:
            _BUDGET.reset(mine)


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

    def tick(self) -> None:
        if time.monotonic() > self._deadline:
            raise RenderError(f"a rendering over {TIME_LIMIT:g} s")

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
            if size > OUTPUT_LIMIT:
                raise RenderError(f"a rendering over {OUTPUT_LIMIT // 1024} kB")
            self.tick()
            yield part
