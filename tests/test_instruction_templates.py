import collections
import json
import subprocess
import sys
import textwrap

import pytest

from jobs.engines.spark import package_zip
from transforms.synth.instruction_templates import (
    EXTRACTIVE_ANSWERS,
    SLOT_TYPES,
    TASK_TYPES,
    TEMPLATE_LANGS,
    InstructionTemplate,
    choose_templates,
    fill,
    load_instruction_templates,
    stable_rank,
    templates_by_type,
)
from transforms.synth.prompts import PROMPT_NAMES

TEMPLATES = load_instruction_templates()
BY_ID = {t.id: t for t in TEMPLATES}
# A stand-in value per slot type, to fill every template.
PROBE_VALUES = {
    "en": {"concept": "photosynthesis", "entity": "NASA", "person": "Marie Curie", "place": "Kyoto",
           "organization": "the Red Cross", "country": "Peru", "noun_phrase": "water cycle", "category": "fruits",
           "passage": "Bees dance. The dance shows where food is.", "sentence": "Bees dance to share news.",
           "review": "I love this kettle!", "language": "French"},
    "zh": {"concept": "光合作用", "entity": "腾讯公司", "person": "李白", "place": "杭州市", "organization": "北京大学",
           "country": "秘鲁", "noun_phrase": "水循环", "category": "水果", "passage": "蜜蜂会跳舞。舞蹈能告诉同伴食物在哪里。",
           "sentence": "蜜蜂用舞蹈传递消息。", "review": "这个水壶太好用了！", "language": "英语"},
}  # fmt: skip


def write(tmp_path, name: str, body: str):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def one_template(tmp_path, **fields) -> str:
    entry = {"id": "t1", "task_type": "explain", "lang": "en", "template": "What is {concept}?",
             "slots": {"concept": "concept"}} | fields  # fmt: skip
    entry = {k: v for k, v in entry.items() if v is not None}
    path = tmp_path / "one.yaml"
    path.write_text(json.dumps({"templates": [entry]}, ensure_ascii=False), encoding="utf-8")  # JSON is YAML
    return str(path)


# --- the packaged templates -------------------------------------------------------


def test_every_task_type_has_at_least_four_templates_in_each_language():
    counts = templates_by_type(TEMPLATES)
    assert len(TASK_TYPES) >= 8
    for task_type in ("explain", "list", "translate", "classify", "summarize", "extract", "write", "compare",
                      "answer"):  # fmt: skip
        assert task_type in TASK_TYPES
    for task_type in TASK_TYPES:
        for lang in TEMPLATE_LANGS:
            assert counts.get((task_type, lang), 0) >= 4, (task_type, lang, counts)


def test_no_single_template_or_type_dominates_a_language():
    for lang in TEMPLATE_LANGS:
        mine = [t for t in TEMPLATES if t.lang == lang]
        assert len(mine) >= 50
        share_by_type = collections.Counter(t.task_type for t in mine)
        assert max(share_by_type.values()) <= 0.15 * len(mine), share_by_type


def test_every_slot_type_is_used_by_some_template():
    used = {slot_type for t in TEMPLATES for _, slot_type in t.slots}
    assert used == set(SLOT_TYPES)


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.id)
def test_every_packaged_template_fills(template):
    values = {slot: PROBE_VALUES[template.lang][slot_type] for slot, slot_type in template.slots}
    if len(set(template.slot_types.values())) < len(template.slots):  # {a} and {b} of one type
        values = {slot: f"{value}-{i}" for i, (slot, value) in enumerate(values.items())}
    text = fill(template, values)
    for value in values.values():
        assert value in text
    assert "{" not in text.replace("{{", "") and text == text.strip()


def test_extractive_methods_are_declared_where_they_can_answer():
    with_method = [t for t in TEMPLATES if t.extractive_answer]
    assert {t.extractive_answer for t in with_method} == set(EXTRACTIVE_ANSWERS)
    assert not [t.id for t in with_method if t.task_type == "translate"]
    for lang in TEMPLATE_LANGS:  # model-free mode covers most task types in both languages
        types = {t.task_type for t in with_method if t.lang == lang}
        assert {"explain", "list", "classify", "summarize", "extract", "compare", "answer"} <= types


def test_the_examples_from_the_brief_are_there():
    texts = {t.template for t in TEMPLATES}
    for text in ("What is {concept}?", "Explain the difference between {a} and {b}.", "Give three examples of {category}.",
                 "Summarize the following paragraph: {passage}", "Translate into {language}: {sentence}",
                 "Is this review positive or negative? {review}", "Find the people mentioned in: {passage}",
                 "解释{a}和{b}之间的区别。", "{country}的首都是哪里？"):  # fmt: skip
        assert text in texts


def test_templates_are_plain_picklable_data():
    import pickle

    assert pickle.loads(pickle.dumps(TEMPLATES)) == TEMPLATES
    assert hash(TEMPLATES[0]) == hash(pickle.loads(pickle.dumps(TEMPLATES[0])))
    assert BY_ID["en.compare.difference"].slot_types == {"a": "concept", "b": "concept"}


# --- filling --------------------------------------------------------------------


def test_fill_substitutes_values_verbatim_without_evaluating_them():
    template = BY_ID["en.explain.what_is"]
    assert fill(template, {"concept": "  photosynthesis "}) == "What is photosynthesis?"
    assert (
        fill(template, {"concept": "{x} {{ 7*7 }} {0.__class__}"}) == "What is {x} {{ 7*7 }} {0.__class__}?"
    )


def test_fill_keeps_literal_braces_written_doubled(tmp_path):
    (template,) = load_instruction_templates(one_template(tmp_path, template="Put {concept} in {{braces}}."))
    assert fill(template, {"concept": "it"}) == "Put it in {braces}."


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "missing concept"),
        ({"concept": "x", "other": "y"}, "unknown other"),
        ({"concept": ""}, "non-empty string"),
        ({"concept": 3}, "non-empty string"),
    ],
)
def test_fill_rejects_wrong_values(values, message):
    with pytest.raises(ValueError, match=message) as info:
        fill(BY_ID["en.explain.what_is"], values)
    assert "en.explain.what_is" in str(info.value)


# --- choosing ---------------------------------------------------------------------


def test_choose_templates_is_stable_and_per_language():
    first = choose_templates(TEMPLATES, "en", 7, "doc-1")
    assert first == choose_templates(list(reversed(TEMPLATES)), "en", 7, "doc-1")
    assert {t.lang for t in first} == {"en"} and len(first) == sum(t.lang == "en" for t in TEMPLATES)
    assert first != choose_templates(TEMPLATES, "en", 7, "doc-2")
    assert first != choose_templates(TEMPLATES, "en", 8, "doc-1")
    assert {t.lang for t in choose_templates(TEMPLATES, "zh-Hant", 7, "d")} == {"zh"}
    assert {t.lang for t in choose_templates(TEMPLATES, "yue", 7, "d")} == {"zh"}
    assert choose_templates(TEMPLATES, "fr", 7, "doc-1") == []


def test_choose_templates_spreads_the_lead_over_all_templates():
    english = [t for t in TEMPLATES if t.lang == "en"]
    leads = collections.Counter(choose_templates(TEMPLATES, "en", 1, f"doc-{i}")[0].id for i in range(6000))
    expected = 6000 / len(english)
    assert set(leads) == {t.id for t in english}
    assert max(leads.values()) < 2.0 * expected and min(leads.values()) > 0.4 * expected


def test_stable_rank():
    assert stable_rank("p", 1, "a", "b") == stable_rank("p", 1, "a", "b")
    assert len({stable_rank("p", 1, "a", "b"), stable_rank("p", 2, "a", "b"), stable_rank("q", 1, "a", "b"),
                stable_rank("p", 1, "ab", "")}) == 4  # fmt: skip


# --- loading user files and validation ------------------------------------------------


def test_a_user_file_or_folder_replaces_the_packaged_templates(tmp_path):
    write(
        tmp_path,
        "a.yaml",
        """\
        templates:
          - id: mine.what
            task_type: explain
            lang: en
            template: "What does {concept} do?"
            slots: {concept: concept}
        """,
    )
    write(
        tmp_path,
        "b.yml",
        """\
        templates:
          - id: mine.zh
            task_type: answer
            lang: zh
            template: "{person}是谁？"
            slots: {person: person}
            extractive_answer: definition
        """,
    )
    write(tmp_path, "notes.txt", "not a template file")
    folder = load_instruction_templates(tmp_path)
    assert [t.id for t in folder] == ["mine.what", "mine.zh"]
    assert folder[1] == InstructionTemplate(
        "mine.zh", "answer", "zh", "{person}是谁？", (("person", "person"),), "definition"
    )
    assert [t.id for t in load_instruction_templates(tmp_path / "a.yaml")] == ["mine.what"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"task_type": "poem"}, "unknown task_type 'poem'"),
        ({"lang": "fr"}, "unknown lang 'fr'"),
        ({"slots": {"concept": "idea"}}, "slot 'concept' has unknown type 'idea'"),
        (
            {"template": "What is {concept} in {language}?"},
            r"slot\(s\) \{language\} used in the template but not declared",
        ),
        (
            {"slots": {"concept": "concept", "extra": "place"}},
            r"slot\(s\) extra declared under `slots` but not used",
        ),
        ({"template": "What is {concept:>20}?"}, r"\{concept:>20\} is not a slot"),
        ({"template": "What is {concept.__class__}?"}, r"\{concept.__class__\} is not a slot"),
        ({"template": "What is {}?", "slots": {"concept": "concept"}}, r"\{\} is not a slot"),
        ({"template": "What is {concept!r}?"}, r"\{concept!r\} is not a slot"),
        ({"template": "What is {concept?"}, "braces do not pair up"),
        ({"slots": {}}, "`slots` must map each slot name"),
        ({"slots": {"two words": "concept"}}, "must be an identifier"),
        ({"template": "   "}, "`template` must be a non-empty string"),
        ({"id": "bad id!"}, "`id` must be a name"),
        ({"colour": "red"}, r"unknown key\(s\) colour"),
        ({"lang": None}, r"missing key\(s\) lang"),
        ({"extractive_answer": "magic"}, "unknown extractive_answer 'magic'"),
        ({"extractive_answer": "sentiment"}, "'sentiment' needs exactly these slots: one of \\(review\\)"),
        ({"extractive_answer": "definitions"}, "needs exactly these slots"),
        (
            {"task_type": "translate", "extractive_answer": "definition"},
            "translate template cannot be answered",
        ),
        ({"lang": "zh"}, "no Chinese words outside its slots"),
        ({"template": "什么是{concept}？"}, "holds Chinese characters; is it zh"),
    ],
)
def test_validation_names_the_file_the_template_and_the_problem(tmp_path, fields, message):
    path = one_template(tmp_path, **fields)
    with pytest.raises(ValueError, match=message) as info:
        load_instruction_templates(path)
    assert path in str(info.value)
    if "id" not in fields and "template #" not in str(info.value):
        assert "'t1'" in str(info.value)


def test_a_correct_single_template_loads(tmp_path):
    (template,) = load_instruction_templates(one_template(tmp_path))
    assert template == InstructionTemplate(
        "t1", "explain", "en", "What is {concept}?", (("concept", "concept"),)
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("templates: []\n", "`templates:` is empty"),
        ("formats: []\n", "expected a top-level `templates:` list"),
        ("templates: [3]\n", "template #1: expected a mapping"),
        ("templates: [\n", "not valid YAML"),
    ],
)
def test_file_level_errors(tmp_path, body, message):
    path = write(tmp_path, "bad.yaml", body)
    with pytest.raises(ValueError, match=message):
        load_instruction_templates(path)


def test_duplicate_ids_within_and_across_files(tmp_path):
    entry = '  - {id: same, task_type: explain, lang: en, template: "What is {c}?", slots: {c: concept}}\n'
    write(tmp_path / "", "one.yaml", "templates:\n" + entry + entry)
    with pytest.raises(ValueError, match="'same': duplicate id"):
        load_instruction_templates(tmp_path / "one.yaml")
    folder = tmp_path / "folder"
    folder.mkdir()
    write(folder, "a.yaml", "templates:\n" + entry)
    write(folder, "b.yaml", "templates:\n" + entry)
    with pytest.raises(ValueError, match=r"b.yaml: template 'same': duplicate id, already used in .*a.yaml"):
        load_instruction_templates(folder)


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(ValueError, match="no such instruction template file or folder"):
        load_instruction_templates(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no .yaml or .yml instruction template files"):
        load_instruction_templates(tmp_path)


# --- from a zip, as on a cluster executor ----------------------------------------------

ZIP_PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import templates
from transforms.synth.instruction_templates import load_instruction_templates
from transforms.synth.prompts import load_prompts, self_instruct_prompt
from transforms.synth.seed_tasks import load_seed_tasks
print(json.dumps({"module": templates.__file__, "templates": len(load_instruction_templates()),
                  "prompts": sorted(load_prompts()), "seeds": len(load_seed_tasks()),
                  "prompt_end": self_instruct_prompt(["a", "b"])[-6:]}))
"""


def test_templates_prompts_and_seeds_load_from_the_shipped_zip(tmp_path):
    zip_path = package_zip(str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", ZIP_PROBE, zip_path], cwd=tmp_path, check=False,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["module"].startswith(zip_path), "templates must come from the zip, as on an executor"
    assert result["templates"] == len(TEMPLATES)
    assert result["prompts"] == sorted(PROMPT_NAMES)  # every packaged prompt, the chat variants too
    assert result["seeds"] >= 80
    assert result["prompt_end"].endswith("\n3.")
