"""The one sandboxed Jinja environment: hostile user templates are stopped, quickly, with a clear error."""

import time

import pytest
from jinja2.exceptions import SecurityError

from transforms.mix.render import SurfaceFormat, load_formats, render
from transforms.sandbox import (
    RenderLimits,
    TemplateLimitError,
    compile_template,
    sandboxed_environment,
)
from transforms.synth.prompts import load_prompts

# Short budgets keep the suite fast; the defaults are 2 s and 1 MiB.
FAST = RenderLimits(max_seconds=0.3)
ENV = sandboxed_environment(limits=FAST)


def _render(source: str, **context) -> str:
    return compile_template(ENV, source, "my-template").render(**context)


def _refused(source: str, match: str, **context) -> float:
    start = time.monotonic()
    with pytest.raises(TemplateLimitError, match=match) as info:
        _render(source, **context)
    assert str(info.value).startswith("my-template: ")  # the template is named
    assert isinstance(info.value, ValueError)  # callers that handle bad config handle this too
    return time.monotonic() - start


def test_ordinary_templates_render_unchanged():
    source = "{% for u, a in history %}U: {{ u }}\nA: {{ a }}\n{% endfor %}{{ instruction|upper ~ '!' }}"
    assert _render(source, instruction="hi", history=[("q", "a")]) == "U: q\nA: a\nHI!"
    assert _render("{{ 'ab' * 3 }} {{ range(3)|join(',') }} {{ '%05d' % 42 }} {{ '{:>4}'.format(7) }}") == (
        "ababab 0,1,2 00042    7"
    )
    assert _render("{{ '-' * 20 }}{{ 'x'|center(9) }}") == "-" * 20 + "    x    "
    # Guarded loops keep everything `loop` offers, `else` and recursion.
    loops = "{% for x in xs %}{{ loop.index }}/{{ loop.length }}{{ ',' if not loop.last }}{% else %}none{% endfor %}"
    assert _render(loops, xs=["a", "b", "c"]) == "1/3,2/3,3/3"
    assert _render(loops, xs=[]) == "none"
    tree = (
        "{% for n in nodes recursive %}{{ n.name }}{% if n.kids %}({{ loop(n.kids) }}){% endif %}{% endfor %}"
    )
    assert _render(tree, nodes=[{"name": "a", "kids": [{"name": "b", "kids": []}]}]) == "a(b)"


@pytest.mark.parametrize(
    "source",
    [
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        # Iterating a (permitted) 1 MB string twice over: 10^12 steps without any call.
        "{% set s = 'x' * 1000000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
        # Two recursive calls per call: 2^40 calls, each shallow.
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
    ],
    ids=["nested-range", "nested-string-loops", "exponential-macro"],
)
def test_runaway_loops_are_stopped_by_the_time_limit(source):
    elapsed = _refused(source, r"took longer than the limit of 0\.3 s")
    assert elapsed < 3


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("{{ 'x' * 100000000 }}", r"str \* 100000000 would be 100,000,000 characters.*max_output_chars"),
        ("{% set n = 10 ** 8 %}{{ [0] * n }}", r"list \* 100000000"),
        ("{{ 10 ** 100000000 }}", "integer power"),
        (
            "{% set ns = namespace(v='x') %}{% for i in range(40) %}{% set ns.v = ns.v ~ ns.v %}{% endfor %}",
            "a string would be 2,097,152",
        ),
        (
            "{% set ns = namespace(v='x') %}{% for i in range(40) %}{% set ns.v = ns.v + ns.v %}{% endfor %}",
            "a concatenation would be 2,097,152",
        ),
        ("{{ 'x'|center(1000000000) }}", r"center\(\)"),
        ("{{ 'x'.ljust(1000000000) }}", r"str\.ljust\(\)"),
        ("{{ '%1000000000d' % 1 }}", "a formatted field"),
        ("{{ '{:>1000000000}'.format(1) }}", "a formatted field"),
        ("{% set s = 'x' * 1000000 %}{{ s|replace('x', 'yyyyyyyyyy') }}", r"replace\(\)"),
        ("{% set s = 'x' * 1000000 %}{{ s.join(s) }}", r"str\.join\(\)"),
        ("{{ lipsum(100000) }}", r"lipsum\(100000\)"),
        # Text written to a buffer ({% set %} block) or emitted from a loop is counted as written.
        (
            "{% set x %}{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}{% endset %}{{ x|length }}",
            "text written in loops, macros and blocks",
        ),
        ("{% for i in range(100000) %}" + "z" * 100 + "{% endfor %}", "text written in loops"),
    ],
)
def test_huge_strings_are_refused_before_they_are_built(source, match):
    elapsed = _refused(source, match)
    assert elapsed < 1


def test_a_huge_range_and_endless_recursion_are_refused():
    _refused("{% for i in range(10000000) %}{% endfor %}", r"range\(\) of 10,000,000 items .* \(max_range\)")
    _refused("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", r"nested deeper than the limit of 100")
    _refused("{% for n in [1] recursive %}{{ loop([n]) }}{% endfor %}", r"nested deeper than the limit of 100")


def test_output_limit_applies_to_the_whole_render():
    small = sandboxed_environment(limits=RenderLimits(max_output_chars=1000))
    template = compile_template(small, "{{ a }}{{ a }}", "two-halves")
    assert len(template.render(a="x" * 500)) == 1000
    with pytest.raises(TemplateLimitError, match=r"two-halves: the rendered text is over the limit of 1,000"):
        template.render(a="x" * 501)


def test_the_sandbox_still_refuses_internals():
    with pytest.raises(SecurityError):
        _render("{{ ''.__class__.__mro__ }}")
    with pytest.raises(SecurityError):
        _render("{{ lipsum.__globals__ }}")
    with pytest.raises(SecurityError):
        _render("{{ history.append(1) }}", history=[])


def test_limits_are_per_render_and_a_cached_template_renders_again():
    template = compile_template(ENV, "{% for i in range(n) %}{{ i }}{% endfor %}", "counter")
    with pytest.raises(TemplateLimitError):
        template.render(n=10**6)
    assert template.render(n=3) == "012"


def test_trusted_environment_without_limits_autoescapes():
    env = sandboxed_environment(limits=None, autoescape=True)
    assert env.from_string("<p>{{ x }}</p>").render(x="<b>") == "<p>&lt;b&gt;</p>"
    assert env.from_string("{{ 'x' * 2000000 }}").render().count("x") == 2_000_000


def test_render_limits_are_validated():
    with pytest.raises(ValueError, match="max_seconds must be > 0"):
        RenderLimits(max_seconds=0)


# --- the callers: surface formats and prompts ---------------------------------------------------


def test_a_surface_format_with_a_runaway_loop_is_refused_naming_it(tmp_path):
    fmt = SurfaceFormat(
        "slow",
        ("en",),
        "{{ instruction }}{% for i in range(99999) %}{% for j in range(99999) %}"
        "{% endfor %}{% endfor %}{{ output }}",
    )
    start = time.monotonic()
    with pytest.raises(
        TemplateLimitError, match=r"^format 'slow': rendering took longer than the limit of 2 s"
    ):
        render(fmt, {"instruction": "q", "output": "a"})
    assert time.monotonic() - start < 5
    path = tmp_path / "formats.yaml"
    path.write_text(
        'formats:\n- id: huge\n  langs: [en]\n  template: "{{ instruction * 10000000 }}{{ output }}"\n'
    )
    with pytest.raises(TemplateLimitError, match=r"formats\.yaml: format 'huge': .*max_output_chars"):
        load_formats(str(path))


def test_a_prompt_that_builds_a_huge_string_is_refused_when_loaded(tmp_path):
    (tmp_path / "classification.jinja").write_text("{{ (instruction ~ ' ') * 50000000 }}")
    with pytest.raises(TemplateLimitError, match=r"classification\.jinja: .* over the limit of 1,048,576"):
        load_prompts(str(tmp_path))
