import collections
import json
from importlib import resources

import pytest

from tests.conftest import WEBDATA
from transforms.synth.seed_tasks import REQUIRED_KEYS, SeedTask, SeedTaskError, load_seed_tasks

ALPACA_SEEDS = WEBDATA / "instructions" / "alpaca-self-instruct-seed" / "seed_tasks.jsonl"
BELLE_SEEDS = WEBDATA / "instructions" / "belle-zh" / "zh_seed_tasks.json"

GOOD = {"id": "t1", "name": "capital", "instruction": "Name the capital of the country.",
        "instances": [{"input": "Peru", "output": "Lima"}], "is_classification": False}  # fmt: skip


def write_lines(tmp_path, name, *records):
    path = tmp_path / name
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records) + "\n",
                    encoding="utf-8")  # fmt: skip
    return path


# --- our own seeds -----------------------------------------------------------------------


def test_packaged_seeds_cover_both_languages():
    seeds = load_seed_tasks()
    by_lang = collections.Counter(s.lang for s in seeds)
    assert set(by_lang) == {"en", "zh"} and all(35 <= n <= 50 for n in by_lang.values()), by_lang
    for lang in ("en", "zh"):
        mine = [s for s in seeds if s.lang == lang]
        share = sum(s.is_classification for s in mine) / len(mine)
        assert 0.1 <= share <= 0.3, (lang, share)  # Self-Instruct's seeds are about 15% classification
        assert len({s.id for s in mine}) == len(mine) and len({s.name for s in mine}) == len(mine)
        assert len({s.instruction for s in mine}) == len(mine)
        assert sum(any(i for i, _ in s.instances) for s in mine) >= 0.4 * len(mine)  # many take an input
        assert sum(not any(i for i, _ in s.instances) for s in mine) >= 0.25 * len(mine)  # many do not


def test_packaged_seed_files_use_exactly_the_self_instruct_format():
    folder = resources.files("templates").joinpath("seeds")
    names = sorted(f.name for f in folder.iterdir() if f.name.endswith(".jsonl"))
    assert names == ["seed_tasks_en.jsonl", "seed_tasks_zh.jsonl"]
    for name in names:
        for line in folder.joinpath(name).read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            assert tuple(record) == REQUIRED_KEYS
            assert all(set(instance) == {"input", "output"} for instance in record["instances"])
            assert isinstance(record["is_classification"], bool)


def test_seed_instructions_are_in_the_language_of_their_file():
    for seed in load_seed_tasks():
        assert seed.id.startswith(seed.lang + "_")
        assert all(out.strip() for _, out in seed.instances)


# --- the real Self-Instruct and BELLE seeds --------------------------------------------------


def test_the_self_instruct_seeds_read(webdata):
    seeds = load_seed_tasks(ALPACA_SEEDS)
    assert len(seeds) == 175
    assert {s.lang for s in seeds} == {"en"}
    assert sum(s.is_classification for s in seeds) == 26
    first = seeds[0]
    assert first.id == "seed_task_0" and first.name == "breakfast_suggestion" and first.instances[0][0] == ""
    assert first.instruction.startswith("Is there anything I can eat for a breakfast")
    assert seeds[1].instances == (("Night : Day :: Right : Left",
                                   "The relation between the given pairs is that they are opposites."),)  # fmt: skip


def test_the_belle_seeds_read_although_json_lines_in_a_json_file(webdata):
    seeds = load_seed_tasks(BELLE_SEEDS)
    assert len(seeds) == 175 and {s.lang for s in seeds} == {"zh"}
    assert seeds[0].instruction == "请以下面词语为主题写一首诗" and seeds[0].instances[0][0] == "夏天"


def test_a_folder_of_other_files_is_checked_file_by_file(webdata):
    with pytest.raises(
        SeedTaskError, match=r"eval_set.json:1: missing id, name, instruction, instances, is_classification"
    ):
        load_seed_tasks(BELLE_SEEDS.parent)
    counters = collections.Counter()
    seeds = load_seed_tasks(BELLE_SEEDS.parent, skip_bad=True, counters=counters)
    assert len(seeds) == 175 and counters == {"skip:seed_missing_field": 1000}


# --- formats and errors -----------------------------------------------------------------------


def test_a_json_array_file_and_an_explicit_lang(tmp_path):
    path = tmp_path / "seeds.json"
    path.write_text(json.dumps([GOOD, GOOD | {"id": "t2", "lang": "fr", "instruction": "Nommez une couleur."}]),
                    encoding="utf-8-sig")  # BOM and all  # fmt: skip
    seeds = load_seed_tasks(path)
    assert seeds == [
        SeedTask("t1", "capital", "Name the capital of the country.", (("Peru", "Lima"),), False, "en"),
        SeedTask("t2", "capital", "Nommez une couleur.", (("Peru", "Lima"),), False, "fr"),
    ]


def test_a_folder_reads_jsonl_and_json_in_name_order_and_ids_may_repeat_across_files(tmp_path):
    write_lines(tmp_path, "b.jsonl", GOOD | {"instruction": "把句子翻译成英文。"})
    (tmp_path / "a.json").write_text(json.dumps([GOOD]), encoding="utf-8")
    (tmp_path / "notes.md").write_text("ignored", encoding="utf-8")
    seeds = load_seed_tasks(tmp_path)
    assert [(s.id, s.lang) for s in seeds] == [("t1", "en"), ("t1", "zh")]


@pytest.mark.parametrize(
    ("record", "reason", "message"),
    [
        ("{not json", "bad_json", "not valid JSON"),
        ("[1, 2]", "not_an_object", "expected a JSON object"),
        ({k: v for k, v in GOOD.items() if k != "instances"}, "missing_field", "missing instances"),
        (GOOD | {"instruction": "  "}, "bad_field", "`instruction` must be a non-empty string"),
        (GOOD | {"id": 7}, "bad_field", "`id` must be a non-empty string"),
        (GOOD | {"is_classification": "false"}, "bad_field", "`is_classification` must be true or false"),
        (GOOD | {"instances": []}, "no_instances", "`instances` must be a non-empty list"),
        (GOOD | {"instances": [{"input": "x"}]}, "bad_field", "instance #1 needs"),
        (GOOD | {"instances": [{"input": 3, "output": "x"}]}, "bad_field", "instance #1 needs"),
        (GOOD | {"lang": ""}, "bad_field", "`lang` must be a language code"),
    ],
)
def test_a_bad_line_is_raised_with_file_and_line_or_counted(tmp_path, record, reason, message):
    path = write_lines(tmp_path, "seeds.jsonl", GOOD | {"id": "ok"}, "", record)
    with pytest.raises(SeedTaskError, match=message) as info:
        load_seed_tasks(path)
    assert str(info.value).startswith(f"{path}:3: ") and info.value.reason == reason
    counters = collections.Counter()
    assert [s.id for s in load_seed_tasks(path, skip_bad=True, counters=counters)] == ["ok"]
    assert counters == {f"skip:seed_{reason}": 1}


def test_duplicate_ids_in_one_file(tmp_path):
    path = write_lines(tmp_path, "seeds.jsonl", GOOD, GOOD)
    with pytest.raises(SeedTaskError, match=r"seeds.jsonl:2: duplicate id 't1', first at .*seeds.jsonl:1"):
        load_seed_tasks(path)
    assert len(load_seed_tasks(path, skip_bad=True)) == 1


def test_a_broken_json_array(tmp_path):
    path = tmp_path / "seeds.json"
    path.write_text('[{"id": "t1",\n  oops]', encoding="utf-8")
    with pytest.raises(SeedTaskError, match=r"seeds.json:2: not valid JSON \(the whole array is lost\)"):
        load_seed_tasks(path)
    path.write_text(json.dumps([GOOD, 5]), encoding="utf-8")
    with pytest.raises(SeedTaskError, match=r"seeds.json: task #2: expected a JSON object"):
        load_seed_tasks(path)


def test_missing_paths(tmp_path):
    with pytest.raises(ValueError, match="no such seed file or folder"):
        load_seed_tasks(tmp_path / "nowhere.jsonl")
    with pytest.raises(ValueError, match="no .jsonl or .json seed files"):
        load_seed_tasks(tmp_path)
