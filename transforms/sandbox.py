"""The one sandboxed Jinja environment: user templates render with time and size limits.

Surface formats (transforms/mix/render.py) and LLM prompts
(transforms/synth/prompts.py) are Jinja a user may write. Jinja's
`ImmutableSandboxedEnvironment` already keeps such a template away from Python
internals (`''.__class__`) and from mutating its inputs (`history.append`), but
not from running for minutes or filling memory: `{% for i in range(100000) %}
{% for j in range(100000) %}…` is 10^10 steps, `{{ 'x' * 10**9 }}` a 1 GB string,
a macro calling itself twice per call 2^n calls. Such a template hung a synthesis
pre-check and kept a Spark mix task busy for minutes (issue 9).

`sandboxed_environment(limits=RenderLimits(...))` returns an environment whose
templates are stopped with a `TemplateLimitError` (a ValueError naming the
template, the limit and the key that raises it) when one render

* runs longer than `max_seconds` (default 2 s; a format renders in microseconds),
* produces more than `max_output_chars` characters (default 1 MiB), or builds
  a string or list larger than that on the way (`*`, `+`, `~`, `%`, `.format`,
  `center`/`ljust`/`replace`/`join`… are checked *before* they allocate),
* asks for a `range()` longer than `max_range` items (default 100,000, Jinja's own),
* nests macro or function calls deeper than `max_call_depth` (default 100).

How, without threads or signals (a Spark Python worker may render off the main
thread, where `signal.alarm` is unavailable): the hooks Jinja's sandbox offers
(`call`, `call_binop`, the filters) and two rewrites of the parsed template (every
`{% for %}` iterates through a guard, every `~` concatenation passes a size
check) test the budget. Every loop step, call, operator and output chunk passes
one of them, so a render cannot spin for long between two tests; the clock is
read on every 64th test. The budget lives in a context variable set by
`LimitedTemplate.render`, so a cached compiled template is safe to share
between threads and renders.

`limits=None` gives the plain immutable sandbox with the same options, for
trusted package templates such as the report page (`autoescape=True` for HTML).
"""

from __future__ import annotations

import contextvars
import functools
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment


class TemplateLimitError(ValueError):
    """A template went over a render limit; the message names the template and the limit."""


@dataclass(frozen=True)
class RenderLimits:
    """What one render of a user template may use."""

    # A surface format or a prompt renders in well under a millisecond; two
    # seconds leaves room for a loaded machine and none for a runaway loop.
    max_seconds: float = 2.0
    # 1 MiB: a rendered record or a prompt is at most a few pages; anything
    # bigger is a template bug, and far bigger is the attack (100 MB strings).
    max_output_chars: int = 1 << 20
    # Jinja's own sandbox bound (jinja2.sandbox.MAX_RANGE).
    max_range: int = 100_000
    # Python's recursion limit (1000 frames) is several frames per macro call;
    # 100 nested calls is far beyond any real template and stops well before it.
    max_call_depth: int = 100

    def __post_init__(self) -> None:
        for name in ("max_seconds", "max_output_chars", "max_range", "max_call_depth"):
            if not getattr(self, name) > 0:
                raise ValueError(f"RenderLimits: {name} must be > 0, got {getattr(self, name)!r}")


DEFAULT_LIMITS = RenderLimits()

# Read the clock on every 64th check: cheap, and 64 loop steps take microseconds.
_CLOCK_EVERY = 64


class _Budget:
    """The running render's deadline and call depth."""

    __slots__ = ("deadline", "depth", "limits", "name", "ticks", "written")

    def __init__(self, name: str, limits: RenderLimits) -> None:
        self.name = name
        self.limits = limits
        self.deadline = time.monotonic() + limits.max_seconds
        self.depth = 0
        self.ticks = 0
        self.written = 0

    def tick(self) -> None:
        self.ticks += 1
        if self.ticks % _CLOCK_EVERY == 0 and time.monotonic() > self.deadline:
            raise TemplateLimitError(
                f"{self.name}: rendering took longer than the limit of {self.limits.max_seconds:g} s; "
                "look for loops over large ranges or recursive macros in the template"
            )


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "instructmix_template_budget", default=None
)


def _tick() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.tick()


def _template_name(env: LimitedSandboxedEnvironment) -> str:
    budget = _BUDGET.get()
    return budget.name if budget is not None else "template"


def _too_big(env: LimitedSandboxedEnvironment, what: str, size: int) -> TemplateLimitError:
    limit = env.limits.max_output_chars
    return TemplateLimitError(
        f"{_template_name(env)}: {what} would be {size:,} characters or items, over the limit of "
        f"{limit:,} (max_output_chars); a template must not build large strings or lists"
    )


def _check_size(env: LimitedSandboxedEnvironment, what: str, size: int) -> None:
    if size > env.limits.max_output_chars:
        raise _too_big(env, what, size)


def _sized(value: Any) -> int | None:
    return len(value) if isinstance(value, str | bytes | list | tuple | dict | set | frozenset) else None


# `%d`-style and `{:>N}`-style widths and precisions: the number decides the size
# of what they produce, so a huge one is refused before formatting.
_PERCENT_WIDTH = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_BRACE_WIDTH = re.compile(r"\{[^{}]*?:[^{}\d]*(\d+)?(?:[,_])?(?:\.(\d+))?[^{}]*\}")


def _format_widths(template: str, pattern: re.Pattern[str]) -> int:
    widest = 0
    for match in pattern.finditer(template):
        for group in match.groups():
            if group == "*":
                return 1 << 62  # width taken from an argument: cannot be bounded here
            if group:
                widest = max(widest, int(group))
    return widest


def _check_format_string(env: LimitedSandboxedEnvironment, template: Any, pattern: re.Pattern[str]) -> None:
    if isinstance(template, str):
        _check_size(env, "a formatted field", _format_widths(template, pattern))


def _int_arg(args: tuple, kwargs: dict, position: int, name: str) -> int:
    value = args[position] if len(args) > position else kwargs.get(name, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _text_len(value: Any) -> int:
    return len(value) if isinstance(value, str) else len(str(value)) if value is not None else 0


def _replace_size(text: Any, old: Any, new: Any, count: Any = -1) -> int:
    if not isinstance(text, str):
        text = str(text)
    old, new = str(old), str(new)
    n = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        n = min(n, count)
    return len(text) + n * max(len(new) - len(old), 0)


def _join_size(separator: Any, items: Any) -> int:
    n = len(items) if hasattr(items, "__len__") else 0
    if not n:
        return 0
    size = _text_len(separator) * (n - 1)
    if size > DEFAULT_LIMITS.max_output_chars << 10:  # already hopeless: skip measuring the items
        return size
    return size + sum(_text_len(item) for item in items)


# Size of what a str method will produce, worked out from its arguments.
_STR_METHOD_SIZE: dict[str, Callable[[str, tuple, dict], int]] = {
    "center": lambda s, a, k: _int_arg(a, k, 0, "width"),
    "ljust": lambda s, a, k: _int_arg(a, k, 0, "width"),
    "rjust": lambda s, a, k: _int_arg(a, k, 0, "width"),
    "zfill": lambda s, a, k: _int_arg(a, k, 0, "width"),
    "expandtabs": lambda s, a, k: len(s) + s.count("\t") * _int_arg(a, k, 0, "tabsize"),
    "replace": lambda s, a, k: _replace_size(s, *a[:3]) if len(a) >= 2 else 0,
    "join": lambda s, a, k: _join_size(s, a[0]) if a and hasattr(a[0], "__len__") else 0,
}


class LimitedSandboxedEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, plus the render limits of `self.limits` (see the module doc)."""

    # `+` concatenates, `*` repeats, `**` builds huge integers, `%` formats.
    intercepted_binops = frozenset(("+", "*", "**", "%"))

    def __init__(self, *args: Any, limits: RenderLimits = DEFAULT_LIMITS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.template_class = LimitedTemplate
        self.globals["range"] = self._bounded_range
        self.globals["lipsum"] = self._bounded_lipsum
        self.filters = {name: self._limited_filter(name, f) for name, f in self.filters.items()}
        self.filters["_limit_iter"] = self._limit_iter
        self.filters["_limit_text"] = self._limit_text
        self.filters["_limit_output"] = self._limit_output

    # ---------------------------------------------------------------- template rewrites

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """The parsed template with every loop guarded and every `~` size-checked."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = _filtered(loop.iter, "_limit_iter")
        for concat in list(tree.find_all(nodes.Concat)):
            concat.nodes = [_filtered(n, "_limit_text") for n in concat.nodes]
        # The concatenation itself is checked where it is used: as an output, an
        # operand or an argument, each of which passes a size check.
        # Text written inside a loop, macro or `{% set %}`/`{% filter %}` block may
        # go to a buffer instead of the output (`{% set x %}{% for … %}`), so it is
        # counted where it is written; top-level output is counted by `render`.
        repeated: dict[int, nodes.Output] = {}
        for kind in (nodes.For, nodes.Macro, nodes.CallBlock, nodes.AssignBlock, nodes.FilterBlock):
            for block in tree.find_all(kind):
                for output in block.find_all(nodes.Output):
                    repeated[id(output)] = output
        for output in repeated.values():
            output.nodes = [_filtered(n, "_limit_output") for n in output.nodes]
        return tree

    def _limit_iter(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            _tick()
            yield item

    def _limit_output(self, value: Any) -> Any:
        budget = _BUDGET.get()
        if budget is None:  # compile time: never fold, count at render time
            raise nodes.Impossible()
        budget.written += len(value) if isinstance(value, str) else len(str(value))
        if budget.written > self.limits.max_output_chars:
            raise TemplateLimitError(
                f"{budget.name}: the text written in loops, macros and blocks is over the limit of "
                f"{self.limits.max_output_chars:,} characters (max_output_chars)"
            )
        budget.tick()
        return value

    def _limit_text(self, value: Any) -> Any:
        size = _sized(value)
        if size is not None:
            _check_size(self, "a string", size)
        return value

    # ---------------------------------------------------------------- hooks

    def _bounded_range(self, *args: int) -> range:
        rng = range(*args)
        if len(rng) > self.limits.max_range:
            raise TemplateLimitError(
                f"{_template_name(self)}: range() of {len(rng):,} items is over the limit of "
                f"{self.limits.max_range:,} (max_range)"
            )
        return rng

    def _bounded_lipsum(self, n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
        # Jinja's lipsum writes n paragraphs of up to `max` words (at most ~12
        # characters each) in one call, out of reach of the other checks.
        _check_size(self, f"lipsum({n})", n * max * 12)
        return jinja2.utils.generate_lorem_ipsum(n=n, html=html, min=min, max=max)

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        _tick()
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                size = _sized(seq)
                if size is not None and isinstance(n, int):
                    _check_size(self, f"{type(seq).__name__} * {n}", size * n)
        elif operator == "+":
            a, b = _sized(left), _sized(right)
            if a is not None and b is not None:
                _check_size(self, "a concatenation", a + b)
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
                # Digits of left**right; an integer that long is never a template's business.
                digits = int(right * len(str(abs(left))))
                _check_size(self, "an integer power's digits", digits)
        elif operator == "%" and isinstance(left, str):
            _check_format_string(self, left, _PERCENT_WIDTH)
        result = super().call_binop(context, operator, left, right)
        size = _sized(result)
        if size is not None:
            _check_size(self, f"the result of {operator!r}", size)
        return result

    def call(self, context: jinja2.runtime.Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        budget = _BUDGET.get()
        if budget is not None:
            budget.tick()
        receiver = getattr(obj, "__self__", None)
        if isinstance(receiver, str):
            estimate = _STR_METHOD_SIZE.get(getattr(obj, "__name__", ""))
            if estimate is not None:
                _check_size(self, f"str.{obj.__name__}()", estimate(receiver, args, kwargs))
        if budget is not None:
            budget.depth += 1
            if budget.depth > self.limits.max_call_depth:
                budget.depth -= 1
                raise TemplateLimitError(
                    f"{budget.name}: calls nested deeper than the limit of {self.limits.max_call_depth} "
                    "(max_call_depth); a macro probably calls itself without end"
                )
        try:
            result = super().call(context, obj, *args, **kwargs)
        finally:
            if budget is not None:
                budget.depth -= 1
        size = _sized(result)
        if size is not None:
            _check_size(self, "a call's result", size)
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_format_string(self, value.__self__, _BRACE_WIDTH)
        return wrapped

    def _limited_filter(self, name: str, f: Callable[..., Any]) -> Callable[..., Any]:
        """`f` with the budget ticked, known size blow-ups refused up front and its result size-checked."""
        pass_arg = jinja2.utils._PassArg.from_obj(f)
        skip = 0 if pass_arg is None else 1  # the context/environment argument comes first

        @functools.wraps(f)
        def limited(*args: Any, **kwargs: Any) -> Any:
            _tick()
            value, rest = (args[skip], args[skip + 1 :]) if len(args) > skip else (None, ())
            if name == "center":
                _check_size(self, "center()", _int_arg(rest, kwargs, 0, "width"))
            elif name == "indent":
                lines = str(value).count("\n") + 1 if value is not None else 1
                width = _int_arg(rest, kwargs, 0, "width")
                _check_size(self, "indent()", _text_len(value) + lines * width)
            elif name == "replace" and len(rest) >= 2:
                _check_size(self, "replace()", _replace_size(value, *rest[:3]))
            elif name == "join" and value is not None and hasattr(value, "__len__"):
                separator = rest[0] if rest else kwargs.get("d", "")
                _check_size(self, "join()", _join_size(separator, value))
            elif name == "format":
                _check_format_string(self, value, _PERCENT_WIDTH)
            result = f(*args, **kwargs)
            size = _sized(result)
            if size is not None:
                _check_size(self, f"the {name} filter's result", size)
            return result

        return limited


def _filtered(node: nodes.Node, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


class LimitedTemplate(jinja2.Template):
    """A template of a `LimitedSandboxedEnvironment`: `render` runs under the environment's limits."""

    environment: LimitedSandboxedEnvironment

    def render(self, *args: Any, **kwargs: Any) -> str:
        name = self.name or "template"
        budget = _Budget(name, self.environment.limits)
        token = _BUDGET.set(budget)
        ctx = self.new_context(dict(*args, **kwargs))
        try:
            parts: list[str] = []
            size = 0
            for part in self.root_render_func(ctx):
                size += len(part)
                if size > budget.limits.max_output_chars:
                    raise TemplateLimitError(
                        f"{name}: the rendered text is over the limit of {budget.limits.max_output_chars:,} "
                        "characters (max_output_chars)"
                    )
                budget.tick()
                parts.append(part)
            return "".join(parts)
        except RecursionError:
            raise TemplateLimitError(
                f"{name}: calls nested too deep (Python's recursion limit); a macro probably calls itself "
                "without end"
            ) from None
        except TemplateLimitError:
            raise
        except Exception:  # noqa: BLE001 - as jinja2.Template.render: re-raised with the template's lines
            self.environment.handle_exception()
        finally:
            _BUDGET.reset(token)

    def generate(self, *args: Any, **kwargs: Any) -> Iterator[str]:
        yield self.render(*args, **kwargs)


def sandboxed_environment(
    *,
    limits: RenderLimits | None = DEFAULT_LIMITS,
    autoescape: bool = False,
    loader: jinja2.BaseLoader | None = None,
) -> SandboxedEnvironment:
    """The project's Jinja environment: immutable sandbox, StrictUndefined, block trimming.

    With `limits` (the default) every render is bounded as the module doc says;
    use it for anything a user writes. `limits=None` is for trusted package
    templates (the report page), which render large pages from real data.
    `autoescape=True` escapes HTML; `loader` finds `{% include %}`d files.
    trim_blocks/lstrip_blocks let a `{% if %}` sit on a line of its own in a
    YAML or Jinja file without leaving a blank line behind.
    """
    options: dict[str, Any] = {
        "undefined": jinja2.StrictUndefined,
        "autoescape": autoescape,
        "keep_trailing_newline": False,
        "trim_blocks": True,
        "lstrip_blocks": True,
        "loader": loader,
    }
    if limits is None:
        return ImmutableSandboxedEnvironment(**options)
    return LimitedSandboxedEnvironment(limits=limits, **options)


def compile_template(env: jinja2.Environment, source: str, name: str) -> jinja2.Template:
    """`source` compiled in `env` under `name`, which limit errors and syntax errors then name."""
    return env.template_class.from_code(env, env.compile(source, name=name), env.make_globals(None), None)
