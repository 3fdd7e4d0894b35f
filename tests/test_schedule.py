"""Ratio schedules (transforms/mix/schedule.py) and the mix config's `ratio` that gives them."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from jobs.config import ConfigError, MixConfig, PipelineConfig, validate_config
from transforms.mix.schedule import RatioSchedule, RatioStep

TWO_STEPS = {"schedule": [{"until": 0.5, "ratio": 0.02}, {"until": 1.0, "ratio": 0.08}]}
# 0.02 to 0.3, a ramp from 0.02 to 0.08 over (0.3, 0.7], 0.08 to the end.
RAMPED = {"schedule": [{"until": 0.3, "ratio": 0.02}, {"until": 0.7, "ratio": 0.08, "ramp": True},
                       {"until": 1, "ratio": 0.08}]}
MIX = {"ratio": 0.05, "tokenizer": "t", "pretrain": [{"path": "p"}], "instructions": [{"path": "i", "weight": 1}],
       "output": {"path": "o"}}


def _numeric_mean(schedule: RatioSchedule, start: float, end: float, n: int = 200_001) -> float:
    xs = np.linspace(start, end, n)
    ys = schedule.at_many(xs)
    return float(np.sum((ys[1:] + ys[:-1]) / 2 * np.diff(xs)) / (end - start))  # trapezoid rule


# --------------------------------------------------------------------------- values


def test_a_step_holds_its_ratio_up_to_and_including_its_until():
    s = RatioSchedule.from_spec(TWO_STEPS)
    assert s.at(0.0) == 0.02 and s.at(0.25) == 0.02
    assert s.at(0.5) == 0.02  # on the boundary: the earlier step
    assert s.at(np.nextafter(0.5, 1)) == 0.08 and s.at(1.0) == 0.08
    assert s.at(-3) == 0.02 and s.at(7) == 0.08  # clamped to [0, 1]


def test_a_ramp_goes_in_a_straight_line_from_the_previous_ratio():
    s = RatioSchedule.from_spec(RAMPED)
    assert s.at(0.3) == 0.02
    assert s.at(0.4) == pytest.approx(0.035)
    assert s.at(0.5) == pytest.approx(0.05)
    assert s.at(0.7) == pytest.approx(0.08) and s.at(0.9) == 0.08
    # A ramp down works the same way.
    down = RatioSchedule((RatioStep(0.5, 0.1), RatioStep(1.0, 0.02, ramp=True)))
    assert down.at(0.75) == pytest.approx(0.06) and down.at(1.0) == pytest.approx(0.02)


def test_at_many_gives_the_values_of_at():
    s = RatioSchedule.from_spec(RAMPED)
    positions = np.concatenate((np.linspace(-0.1, 1.1, 1001), [0.3, 0.7, 1.0, np.nextafter(0.3, 1)]))
    assert s.at_many(positions).tolist() == [s.at(p) for p in positions]
    grid = s.at_many(positions.reshape(5, -1))
    assert grid.shape == (5, len(positions) // 5)


def test_mean_is_the_exact_average_over_the_span():
    s = RatioSchedule.from_spec(RAMPED)
    for start, end in [(0, 1), (0.1, 0.35), (0.3, 0.7), (0.45, 0.95), (0.0, 0.3), (0.69, 0.71)]:
        assert s.mean(start, end) == pytest.approx(_numeric_mean(s, start, end), abs=1e-9)
    assert s.mean(0, 1) == pytest.approx(0.3 * 0.02 + 0.4 * 0.05 + 0.3 * 0.08)
    two = RatioSchedule.from_spec(TWO_STEPS)
    assert two.mean(0.25, 0.75) == pytest.approx(0.05)
    # A span inside one flat step is exactly its ratio (a shard's target compares equal to the step's).
    assert two.mean(0.1, 0.3) == 0.02 and two.mean(0.5, 0.8) == 0.08 and two.mean(0.6, 1.4) == 0.08
    assert s.mean(0.71, 0.93) == 0.08 and s.mean(-0.5, 0.2) == 0.02
    assert s.mean(0.5, 0.5) == s.at(0.5) and s.mean(0.3, 0.3) == 0.02
    # Outside [0, 1] the schedule holds its end values.
    assert s.mean(-1, 0) == pytest.approx(0.02) and s.mean(1, 2) == pytest.approx(0.08)
    with pytest.raises(ValueError, match="start <= end"):
        s.mean(0.6, 0.4)


def test_mean_many_gives_the_values_of_mean():
    s = RatioSchedule.from_spec(RAMPED)
    edges = np.linspace(0, 1, 8)
    assert s.mean_many(edges[:-1], edges[1:]) == pytest.approx([s.mean(a, b) for a, b in itertools.pairwise(edges)])


def test_constant_schedules_and_their_extremes():
    c = RatioSchedule.constant(0.05)
    assert c.steps == (RatioStep(1.0, 0.05),) and c.is_constant and c.at(0.3) == 0.05 and c.mean(0.1, 0.9) == 0.05
    assert RatioSchedule.from_spec(0.05) == c and RatioSchedule.from_spec(c) is c
    same = RatioSchedule.from_spec({"schedule": [{"until": 0.5, "ratio": 0.05}, {"until": 1, "ratio": 0.05}]})
    assert same.is_constant
    s = RatioSchedule.from_spec(RAMPED)
    assert not s.is_constant and s.min_ratio == 0.02 and s.max_ratio == 0.08


def test_as_dict_is_the_config_shape_and_reads_back():
    s = RatioSchedule.from_spec(RAMPED)
    assert s.as_dict() == {"schedule": [{"until": 0.3, "ratio": 0.02, "ramp": False},
                                        {"until": 0.7, "ratio": 0.08, "ramp": True},
                                        {"until": 1.0, "ratio": 0.08, "ramp": False}]}
    assert RatioSchedule.from_spec(s.as_dict()) == s


# ----------------------------------------------------------------------- validation


@pytest.mark.parametrize(("spec", "message"), [
    ({"schedule": []}, "at least one step"),
    ({"schedule": [{"until": 0.5, "ratio": 0.02}, {"until": 0.4, "ratio": 0.08}]},
     "schedule[1].until 0.4 must be greater than the previous step's until 0.5"),
    ({"schedule": [{"until": 0.5, "ratio": 0.02}, {"until": 0.5, "ratio": 0.08}]},
     "schedule[1].until 0.5 must be greater than the previous step's until 0.5"),
    ({"schedule": [{"until": 0.5, "ratio": 0.02}, {"until": 0.9, "ratio": 0.08}]},
     "schedule[1].until is 0.9, but the last step must end at 1.0"),
    ({"schedule": [{"until": 0, "ratio": 0.02}, {"until": 1, "ratio": 0.08}]}, "schedule[0].until must be in (0, 1], got 0"),
    ({"schedule": [{"until": 1.5, "ratio": 0.02}]}, "schedule[0].until must be in (0, 1], got 1.5"),
    ({"schedule": [{"until": 0.5, "ratio": 0.02}, {"until": 1, "ratio": 0.7}]}, "schedule[1].ratio must be in (0, 0.5], got 0.7"),
    ({"schedule": [{"until": 1, "ratio": 0}]}, "schedule[0].ratio must be in (0, 0.5], got 0"),
    ({"schedule": [{"until": 1, "ratio": 0.05, "ramp": True}]}, "schedule[0].ramp: the first step cannot ramp, there is no previous step"),
    ({"schedule": [{"until": 0.5, "ratio": 0.02}, {"until": 1, "ratio": 0.05, "ramp": "yes"}]},
     "schedule[1].ramp must be true or false, got 'yes'"),
    ({"schedule": [{"until": 1, "ratio": 0.05, "rampe": True}]}, "schedule[0]: unknown key(s) ['rampe']"),
    ({"schedule": [{"ratio": 0.05}]}, "schedule[0].until is required"),
    ({"schedule": [{"until": 1}]}, "schedule[0].ratio is required"),
    ({"schedule": [{"until": 1, "ratio": "5%"}]}, "schedule[0].ratio must be a number, got '5%'"),
    ({"schedule": [{"until": True, "ratio": 0.05}]}, "schedule[0].until must be a number, got True"),
    ({"schedule": [0.05]}, "schedule[0] must be a mapping"),
    ({"schedule": {"until": 1, "ratio": 0.05}}, "schedule must be a list of steps"),
    ({"steps": [{"until": 1, "ratio": 0.05}]}, "unknown key(s) ['steps'] in a ratio schedule"),
    ({}, "needs the key schedule"),
    (0.7, "ratio must be in (0, 0.5], got 0.7"),
    ("high", "ratio must be a number or a schedule"),
])
def test_each_rule_is_an_error_naming_the_step_and_key(spec, message):
    with pytest.raises(ValueError) as err:
        RatioSchedule.from_spec(spec)
    assert message in str(err.value)


def test_schedules_built_in_code_are_checked_too():
    with pytest.raises(ValueError, match=r"schedule\[1\]\.until 0\.2 must be greater"):
        RatioSchedule((RatioStep(0.5, 0.02), RatioStep(0.2, 0.05), RatioStep(1.0, 0.05)))
    with pytest.raises(ValueError, match="at least one step"):
        RatioSchedule(())


# --------------------------------------------------------------------------- config


def test_the_config_takes_a_float_as_before():
    cfg = validate_config(MIX, MixConfig, "mix.yaml")
    assert cfg.ratio == 0.05 and isinstance(cfg.ratio, float)
    assert cfg.ratio_schedule() == RatioSchedule.constant(0.05)
    # The fingerprint is computed from this dump: unchanged for a float ratio.
    assert cfg.model_dump(mode="json")["ratio"] == 0.05
    assert validate_config(dict(MIX, ratio="0.05"), MixConfig).ratio == 0.05  # as pydantic's float parsed it


def test_the_config_takes_a_schedule_and_dumps_it_as_written():
    cfg = validate_config(dict(MIX, ratio=RAMPED), MixConfig, "mix.yaml")
    assert cfg.ratio_schedule() == RatioSchedule.from_spec(RAMPED)
    dumped = cfg.model_dump(mode="json")
    assert dumped["ratio"] == RatioSchedule.from_spec(RAMPED).as_dict()
    assert validate_config(dumped, MixConfig) == cfg  # what run.py re-validates from a dump reads back
    assert cfg.ratio_warning() is None


def test_a_pipeline_mix_section_takes_a_schedule_and_hands_it_to_the_mix_job():
    data = {"output": "/runs/r1", "stages": ["mix"], "mix": {k: v for k, v in MIX.items() if k != "output"} | {
        "ratio": TWO_STEPS}}
    cfg = validate_config(data, PipelineConfig, "pipeline.yaml")
    assert cfg.mix.ratio_schedule().at(0.75) == 0.08
    section = cfg.mix.model_dump(mode="json")  # what `instructmix run` (resolved_sections) validates again
    assert validate_config(section, MixConfig, "mix").ratio_schedule() == RatioSchedule.from_spec(TWO_STEPS)
    data["mix"]["ratio"] = {"schedule": [{"until": 1, "ratio": 0.9}]}
    with pytest.raises(ConfigError, match=r"pipeline.yaml: mix\.ratio: schedule\[0\]\.ratio must be in"):
        validate_config(data, PipelineConfig, "pipeline.yaml")


@pytest.mark.parametrize(("ratio", "message"), [
    (0.7, "mix.yaml: ratio: must be in (0, 0.5], got 0.7"),
    ({"schedule": [{"until": 0.5, "ratio": 0.02}, {"until": 0.4, "ratio": 0.08}]},
     "mix.yaml: ratio: schedule[1].until 0.4 must be greater than the previous step's until 0.5"),
    ({"schedule": [{"until": 1, "ratio": 0.6}]}, "mix.yaml: ratio: schedule[0].ratio must be in (0, 0.5], got 0.6"),
    ({"schedule": [{"until": 1, "ratio": 0.05, "ramp": True}]}, "mix.yaml: ratio: schedule[0].ramp: the first step cannot ramp"),
    ({"plan": []}, "mix.yaml: ratio: unknown key(s) ['plan'] in a ratio schedule"),
    ("five percent", "mix.yaml: ratio: must be a number or a schedule"),
])
def test_config_errors_name_ratio_and_the_step(ratio, message):
    with pytest.raises(ConfigError) as err:
        validate_config(dict(MIX, ratio=ratio), MixConfig, "mix.yaml")
    assert message in str(err.value)


def test_each_step_outside_the_usual_band_warns_by_name():
    cfg = validate_config(dict(MIX, ratio={"schedule": [
        {"until": 0.2, "ratio": 0.005}, {"until": 0.6, "ratio": 0.05}, {"until": 1, "ratio": 0.2, "ramp": True}]}),
        MixConfig)
    warning = cfg.ratio_warning()
    assert "ratio schedule[0].ratio 0.005 is outside the usual [0.01, 0.1]" in warning
    assert "ratio schedule[2].ratio 0.2 is outside the usual [0.01, 0.1]" in warning
    assert "schedule[1]" not in warning
    assert "ratio 0.2 is outside the usual [0.01, 0.1]" in validate_config(dict(MIX, ratio=0.2), MixConfig).ratio_warning()
    assert validate_config(dict(MIX, ratio=TWO_STEPS), MixConfig).ratio_warning() is None
