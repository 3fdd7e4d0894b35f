import collections
import re
import subprocess
import sys
import textwrap

import pytest
from jinja2.exceptions import SecurityError

from transforms.mix.render import (
    PACK_SEPARATORS,
    SurfaceFormat,
    choose_format,
    formats_for_language,
    load_formats,
    pack,
    render,
)

FORMATS = load_formats()
BY_ID = {f.id: f for f in FORMATS}

FULL = {
    "instruction": "Name three prime numbers.",
    "input": "Only numbers below 10.",
    "output": "2, 3 and 5.",
    "system": "You answer in one line.",
    "history": [("Hi there.", "Hello! How can I help?"), ("Are you a calculator?", "I can do arithmetic.")],
}
BARE = {"instruction": "Name three prime numbers.", "output": "2, 3 and 5.\nAll below 10."}
ZH = {"instruction": "用一句话解释光合作用。", "input": "", "output": "植物利用阳光把二氧化碳和水变成糖。"}
# Words a format uses to label `input` or `system`: none may appear without them.
INPUT_LABELS = ("Input", "Details", "输入", "补充信息")
SYSTEM_LABELS = ("System", "Context", "系统", "背景")


def user_formats(tmp_path, body: str) -> str:
    path = tmp_path / "my-formats.yaml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return str(path)


# --- the packaged formats -------------------------------------------------------


def test_packaged_formats_cover_the_required_layouts():
    assert len(FORMATS) >= 14
    assert len(BY_ID) == len(FORMATS)
    assert {lang for f in FORMATS for lang in f.langs} == {"en", "zh", "any"}
    rendered = "\n".join(render(f, FULL | {"instruction": "X"}) for f in FORMATS)
    for label in ("Task:", "Input:", "Output:", "Question:", "Answer:", "Q:", "A:", "### Instruction",
                  "### Input", "### Response", "User:", "Assistant:", "\n---\n", " → "):  # fmt: skip
        assert label in rendered, label
    zh = "\n".join(render(f, FULL) for f in FORMATS if f.langs == ("zh",))
    for label in ("问：", "答：", "问题：", "回答：", "指令：", "输入：", "输出："):
        assert label in zh, label
    assert (
        render(BY_ID["plain_blank_line"], BARE) == "Name three prime numbers.\n\n2, 3 and 5.\nAll below 10."
    )


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.id)
def test_every_format_shows_every_field_it_is_given(fmt):
    text = render(fmt, FULL)
    for value in (FULL["instruction"], FULL["input"], FULL["output"], FULL["system"]):
        assert value in text
    turns = [turn for pair in FULL["history"] for turn in pair]
    positions = [text.index(turn) for turn in turns]
    assert positions == sorted(positions), "history turns out of order"
    assert positions[-1] < text.index(FULL["instruction"]), "history must come before the current turn"
    assert text == text.rstrip() and text.strip()


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.id)
def test_empty_input_system_and_history_leave_no_dangling_labels(fmt):
    text = render(fmt, BARE | {"input": "", "system": "", "history": []})
    for label in INPUT_LABELS + SYSTEM_LABELS:
        assert label not in text, f"{fmt.id}: dangling {label!r}"
    assert "\n\n\n" not in text
    assert not text.startswith(("\n", " "))
    assert text.endswith("All below 10.")
    # The output starts on its own line or right after a label, never glued to the instruction.
    assert "prime numbers.2" not in text


def test_field_values_are_never_evaluated_as_jinja():
    record = {"instruction": "Print {{ 7 * 7 }} and {% if x %}", "output": "{{ ''.__class__ }}"}
    for fmt in FORMATS:
        text = render(fmt, record)
        assert "{{ 7 * 7 }}" in text and "{{ ''.__class__ }}" in text and "49" not in text


def test_render_accepts_history_as_lists_and_rejects_other_shapes():
    fmt = BY_ID["q_a"]
    assert "Q: u\nA: a\n" in render(fmt, BARE | {"history": [["u", "a"]]})
    with pytest.raises(ValueError, match="'q_a'.*history"):
        render(fmt, BARE | {"history": [["only one"]]})


# --- choosing -------------------------------------------------------------------


def test_choice_spreads_evenly_over_the_formats_of_each_language():
    for lang, n in (("en", 14_000), ("zh", 10_000)):
        allowed = formats_for_language(FORMATS, lang)
        counts = collections.Counter(choose_format(FORMATS, f"rec-{i}", lang, seed=7).id for i in range(n))
        assert set(counts) == {f.id for f in allowed}
        fair = n / len(allowed)
        assert max(counts.values()) <= 2 * fair, counts
        assert min(counts.values()) >= fair / 2, counts


def test_zh_records_get_only_zh_and_any_formats():
    allowed = {f.id for f in FORMATS if "zh" in f.langs or "any" in f.langs}
    for lang in ("zh", "wuu", "yue", "zh-Hans"):
        chosen = {choose_format(FORMATS, f"k{i}", lang, seed=1).id for i in range(2000)}
        assert chosen == allowed
    for fmt_id in allowed:
        assert not re.search(r"[A-Za-z]{2,}", render(BY_ID[fmt_id], ZH)), fmt_id


def test_languages_without_formats_of_their_own_get_the_any_formats():
    any_ids = {f.id for f in FORMATS if f.langs == ("any",)}
    for lang in ("fr", "de", "", "ja"):
        assert {choose_format(FORMATS, f"k{i}", lang, seed=3).id for i in range(500)} == any_ids


def test_choice_is_deterministic_and_depends_on_seed_and_key():
    keys = [f"file.json#{i}" for i in range(300)]
    first = [choose_format(FORMATS, k, "en", seed=5).id for k in keys]
    assert first == [choose_format(list(FORMATS), k, "en", seed=5).id for k in keys]
    assert first != [choose_format(FORMATS, k, "en", seed=6).id for k in keys]
    assert len(set(first)) > 10


def test_choice_and_separator_are_pinned():
    # A change of hash would silently re-render every corpus mixed before it.
    ten = [SurfaceFormat(f"f{i}", ("any",), "{{ instruction }}") for i in range(10)]
    assert [choose_format(ten, f"key-{i}", "en", seed=0).id for i in range(8)] == [
        "f0", "f4", "f9", "f1", "f5", "f0", "f5", "f7",
    ]  # fmt: skip
    assert [pack(["a", "b"], seed=0, key=f"key-{i}") for i in range(3)] == [
        "a\n\n---\n\nb", "a\n\nb", "a\n\n***\n\nb",
    ]  # fmt: skip


def test_no_format_for_a_language_names_it(tmp_path):
    only_en = load_formats(
        user_formats(
            tmp_path,
            "formats:\n- {id: qa, langs: [en], template: 'Q: {{ instruction }} A: {{ output }}{{ input }}{{ system }}{% for u, a in history %}{{ u }}{{ a }}{% endfor %}'}\n",
        )
    )
    with pytest.raises(ValueError, match="'de'.*\\[any\\]"):
        choose_format(only_en, "k", "de", seed=0)


# --- packing --------------------------------------------------------------------


def test_pack_joins_with_one_deterministic_separator():
    parts = ["Q: a\nA: b", "问：c\n答：d", "x\n\ny"]
    seps = collections.Counter()
    for i in range(200):
        doc = pack(parts, seed=1, key=f"doc-{i}")
        assert doc == pack(parts, seed=1, key=f"doc-{i}")
        sep = next(s for s in sorted(PACK_SEPARATORS, key=len, reverse=True) if doc == s.join(parts))
        seps[sep] += 1
    assert set(seps) == set(PACK_SEPARATORS)
    assert pack(["only"], seed=1, key="k") == "only"
    with pytest.raises(ValueError, match="'k'"):
        pack([], seed=1, key="k")


# --- user files: validation, sandbox ----------------------------------------------


def test_a_valid_user_file_replaces_the_packaged_one(tmp_path):
    path = user_formats(
        tmp_path,
        """\
        formats:
          - id: arrow
            langs: [any]
            template: |
              {% for u, a in history %}
              {{ u }} => {{ a }}
              {% endfor %}
              {{ system }} {{ instruction }} {{ input }} => {{ output }}
        """,
    )
    formats = load_formats(path)
    assert [f.id for f in formats] == ["arrow"] and formats[0].langs == ("any",)
    assert (
        render(formats[0], BARE | {"input": "in"})
        == "Name three prime numbers. in => 2, 3 and 5.\nAll below 10."
    )


GOOD = "'{{ instruction }}{{ input }}{{ output }}{{ system }}{% for u, a in history %}{{ u }}{{ a }}{% endfor %}'"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("formats: {}", "top-level `formats:` list"),
        ("formats: []", "`formats:` is empty"),
        ("formats:\n- [1]", "format #1: expected a mapping"),
        (f"formats:\n- {{id: a, langs: [en], template: {GOOD}}}\n- {{id: a, langs: [zh], template: {GOOD}}}",
         "format 'a': duplicate id"),
        (f"formats:\n- {{id: a, langs: [english], template: {GOOD}}}", "format 'a': unknown lang 'english'"),
        (f"formats:\n- {{id: a, langs: [yue], template: {GOOD}}}", "format 'a': lang 'yue': write 'zh'"),
        (f"formats:\n- {{id: a, langs: en, template: {GOOD}}}", "format 'a': `langs` must be a non-empty list"),
        (f"formats:\n- {{id: a, langs: [en, any], template: {GOOD}}}", "list 'any' alone"),
        (f"formats:\n- {{id: a, lang: [en], template: {GOOD}}}", "format 'a': unknown key\\(s\\) lang"),
        ("formats:\n- {id: 'a b', langs: [en], template: x}", "format #1: `id` must be a name"),
        ("formats:\n- {id: a, langs: [en], template: '{% if x %}'}", "format 'a': template does not compile"),
        ("formats:\n- {id: a, langs: [en], template: '{{ instruction }}'}", "format 'a': template leaves out"),
        ("formats:\n- {id: a, langs: [en], template: '  '}", "format 'a': `template` must be a non-empty"),
        ("formats: [unclosed", "not valid YAML"),
    ],
)  # fmt: skip
def test_bad_user_files_are_refused_naming_file_format_and_problem(tmp_path, body, message):
    path = user_formats(tmp_path, body)
    with pytest.raises(ValueError, match=message) as info:
        load_formats(path)
    assert str(info.value).startswith(path)


def test_missing_user_file_is_named(tmp_path):
    with pytest.raises(ValueError, match="nope.yaml: cannot read"):
        load_formats(str(tmp_path / "nope.yaml"))


def test_strict_undefined_names_the_format(tmp_path):
    path = user_formats(
        tmp_path, f"formats:\n- {{id: typo, langs: [en], template: {GOOD[:-1]}{{{{ instrucion }}}}'}}"
    )
    with pytest.raises(ValueError, match=r"my-formats.yaml: format 'typo': .*'instrucion' is undefined"):
        load_formats(path)
    with pytest.raises(ValueError, match=r"format 'typo': UndefinedError: 'instrucion' is undefined"):
        render(SurfaceFormat("typo", ("en",), "{{ instrucion }}"), BARE)


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ instruction.__class__.__subclasses__() }}",
        "{{ history.append(1) }}",
        "{{ lipsum.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
    ],
)
def test_the_sandbox_refuses_internals_and_mutation(tmp_path, template):
    fmt = SurfaceFormat("evil", ("en",), template + GOOD.strip("'"))
    with pytest.raises(SecurityError, match="format 'evil'"):
        render(fmt, FULL)
    path = user_formats(tmp_path, f'formats:\n- id: evil\n  langs: [en]\n  template: "{fmt.template}"\n')
    with pytest.raises(ValueError, match="my-formats.yaml: format 'evil': template refused by the sandbox"):
        load_formats(path)


def test_harmless_string_methods_and_filters_are_allowed():
    fmt = SurfaceFormat("upper", ("en",), "{{ instruction.upper() }} | {{ output | replace('2', 'two') }}")
    assert render(fmt, BARE) == "NAME THREE PRIME NUMBERS. | two, 3 and 5.\nAll below 10."


def test_a_template_that_renders_nothing_is_an_error():
    with pytest.raises(ValueError, match="'blank': rendered an empty text"):
        render(SurfaceFormat("blank", ("en",), "{% if false %}{{ output }}{% endif %}  \n"), BARE)


ZIP_PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
import transforms.mix.render as render
formats = render.load_formats()
fmt = render.choose_format(formats, "k", "zh", seed=0)
print(render.__file__, len(formats), render.render(fmt, {"instruction": "问", "output": "答"}) != "")
"""


def test_packaged_formats_load_from_the_zip_shipped_to_executors(tmp_path):
    from jobs.engines.spark import package_zip

    zip_path = package_zip(str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-c", ZIP_PROBE, zip_path],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    module, count, ok = proc.stdout.split()
    assert module.startswith(zip_path) and int(count) == len(FORMATS) and ok == "True"
