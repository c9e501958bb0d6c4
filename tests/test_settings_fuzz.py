"""No traceback from any setting (issue 23 item 3): random values for every `--sim` key, every
generator option and every training and engine option are parsed and checked, or refused with
one line (UsageError; on the command line: exit 2). Seeded and quick: nothing is simulated at
full size and nothing trains (the CLI cases stop right after the parse and check path)."""

from __future__ import annotations

import math
import random

import pytest

from ptycho_core.errors import UsageError
from ptycho_core.generator import TrainConfig, resolve_train_config, train_settings
from ptycho_core.harness.request import CompareRequest, compare_settings
from ptycho_core.settings import Setting
from ptycho_core.simconfig import DEFAULT_SIM, SimConfig
from ptycho_core.torch.settings import SETTINGS as TORCH_SETTINGS

DRAWS = 40


def _text_pool(setting: Setting) -> list:
    """Values around a setting's declaration: in and out of range, negative, NaN, inf, huge,
    wrong types, empty strings, and the same as non-text values (as the API passes them)."""
    lo = setting.min if setting.min is not None else -1e6
    hi = setting.max if setting.max is not None else 1e6
    numbers = [lo, hi, lo - 1, hi + 1, (lo + hi) / 2, -3, 0, 1, 2, 0.5, -0.5, 1e2, 1e308, -1e308, 10**40, 2**63]
    texts = ["", " ", "abc", "nan", "NaN", "inf", "-inf", "1e2", "0x10", "1_000", "true", "no", "None", "[1]"]
    texts += [repr(x) for x in numbers] + [str(int(x)) for x in numbers if math.isfinite(x)]
    texts += [str(c) for c in setting.choices] + [str(setting.default)]
    values = numbers + [math.nan, math.inf, -math.inf, True, False, None, [1], {"a": 1}, b"1"]
    values += list(setting.choices) + [setting.default]
    return texts + values


def _draws(setting: Setting, seed: int) -> list:
    rng = random.Random(seed)
    pool = _text_pool(setting)
    return [rng.choice(pool) for _ in range(DRAWS)] + pool[:]


def _accepted_or_one_line(call, value):
    """`call(value)` returns, or raises a one-line UsageError; any other exception fails the test."""
    try:
        return call(value)
    except UsageError as exc:
        message = str(exc)
        assert message and "\n" not in message, f"{value!r}: {message!r}"
        return None


def _seed(name: str) -> int:
    return sum(map(ord, name))


@pytest.mark.parametrize("setting", SimConfig.settings(), ids=lambda s: s.name)
def test_every_sim_setting_is_parsed_or_refused_in_one_line(setting):
    for value in _draws(setting, _seed(setting.name)):
        cfg = _accepted_or_one_line(lambda v: DEFAULT_SIM.with_strings({setting.name: v}), value)
        if cfg is not None:
            got = getattr(cfg, setting.field)
            assert isinstance(got, type(setting.default)) and not isinstance(got, bool) or setting.type == "bool"
            if setting.type == "float":
                assert math.isfinite(got)
            if setting.min is not None:
                assert setting.min <= got
            if setting.max is not None:
                assert got <= setting.max


@pytest.mark.parametrize("setting", [*train_settings(), *TORCH_SETTINGS], ids=lambda s: s.name)
def test_every_training_and_engine_option_is_parsed_or_refused_in_one_line(setting):
    for value in _draws(setting, _seed(setting.name)):
        config = _accepted_or_one_line(
            lambda v: resolve_train_config({setting.field: v}, engine_settings=TORCH_SETTINGS), value
        )
        if config is not None:
            assert isinstance(config, TrainConfig)
            got = config.engine[setting.name] if setting in TORCH_SETTINGS else getattr(config, setting.field)
            if setting.choices:
                assert got in setting.choices


@pytest.mark.parametrize("setting", compare_settings(), ids=lambda s: s.name)
def test_every_compare_setting_is_checked_or_refused_in_one_line(setting):
    for value in _draws(setting, _seed(setting.name)):
        _accepted_or_one_line(lambda v: CompareRequest(**{setting.field: v}).check(), value)


def _dummy_host():
    from ptycho_core.plugins import PluginHost
    from ptycho_core.testing import dummies

    host = PluginHost(load="")
    host.register(dummies, "ptycho-dummies")
    return host


def _generator_specs():
    """Every installed generator (the project's plugins) and the test dummies."""
    from ptycho_core.plugins import PluginHost

    return [*PluginHost().registry().generators(), *_dummy_host().registry().generators()]


def test_every_generator_and_stitcher_option_is_parsed_or_refused_in_one_line():
    from ptycho_core.plugins import PluginHost

    specs = [*_generator_specs(), *PluginHost().registry().stitchers()]
    assert specs
    seen = 0
    for spec in specs:
        for key, option in spec.options.items():
            for value in _draws(option, _seed(spec.name + key)):
                values = _accepted_or_one_line(lambda v, s=spec, k=key: s.resolve_options({k: v}), value)
                if values is not None:
                    option.check(values[key])
                seen += 1
    assert seen > 100


# --- the command line: exit 2 and one line, or on to the work (which these tests stop) ---------


class Accepted(Exception):
    """Raised in place of the work once every setting was parsed and checked."""


def _accepted(*args, **kwargs):
    raise Accepted


@pytest.fixture
def stopped_before_work(monkeypatch):
    import ptycho_core.harness.plan as plan
    import ptycho_core.io as io
    import ptycho_core.simulate as simulate

    select = plan.select

    def select_then_stop(request, registry):
        select(request, registry)
        raise Accepted

    monkeypatch.setattr(simulate, "simulate_pair", _accepted)
    monkeypatch.setattr(io, "load_dataset", _accepted)
    monkeypatch.setattr(plan, "select", select_then_stop)


def _one_line_or_accepted(result):
    if isinstance(result.exception, Accepted):
        return "accepted"
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_random_sim_keys_on_the_command_line_exit_2_in_one_line_or_go_on(invoke, stopped_before_work, tmp_path):
    rng = random.Random(23)
    outcomes = set()
    for _ in range(30):
        setting = rng.choice(SimConfig.settings())
        value = rng.choice([v for v in _text_pool(setting) if isinstance(v, str)])
        command = rng.choice(["simulate", "compare"])
        args = [
            command,
            "--sim",
            f"{setting.name}={value}",
            "--out",
            tmp_path / ("d.npz" if command == "simulate" else "c"),
        ]
        outcomes.add(_one_line_or_accepted(invoke(*args, host=_dummy_host())) == "accepted")
    assert outcomes == {True, False}


def test_random_training_and_generator_options_on_the_command_line(invoke, stopped_before_work, tmp_path):
    host = _dummy_host()
    specs = [s for s in host.registry().generators() if s.kind == "learned" and s.options]
    rng = random.Random(20)
    outcomes = set()
    for _ in range(30):
        setting = rng.choice([*train_settings(), *TORCH_SETTINGS])
        value = rng.choice([v for v in _text_pool(setting) if isinstance(v, str)])
        spec = rng.choice(specs)
        key, option = rng.choice(sorted(spec.options.items()))
        option_value = rng.choice([v for v in _text_pool(option) if isinstance(v, str)])
        train = ["train", "-g", spec.name, "--data", tmp_path / "d.npz", "--out", tmp_path / "m"]
        train += [setting.flag, value, "-o", f"{key}={option_value}"]
        outcomes.add(_one_line_or_accepted(invoke(*train, host=host)) == "accepted")
        compare = ["compare", "-g", spec.name, setting.flag, value, "-o", f"{spec.name}.{key}={option_value}"]
        outcomes.add(_one_line_or_accepted(invoke(*compare, "--out", tmp_path / "c", host=host)) == "accepted")
    assert outcomes == {True, False}


@pytest.mark.parametrize(
    "args, words",
    [
        (["simulate", "--sim", "pupil_radius=-3"], "pupil_radius: -3.0 is below its minimum 0.0"),
        (["simulate", "--sim", "patch_size=1e2"], "patch_size: expected int, got '1e2'"),
        (["simulate", "--patch-size", "1e2"], "--patch-size: expected int, got '1e2'"),
        (["simulate", "--sim", "object_size=100000"], "object_size: 100000 is above its maximum 4096"),
        (["simulate", "--sim", "step=0.25", "--sim", "object_size=4096"], "pattern values (limit"),
        (["simulate", "--sim", "nphotons=nan"], "nphotons: nan is not a finite number"),
        (["compare", "--epochs", "nan"], "--epochs: expected int, got 'nan'"),
        (["compare", "--lr", "inf"], "--lr: inf is not a finite number"),
        (["compare", "--seeds", "0"], "--seeds: 0 is below its minimum 1"),
        (["compare", "--jobs", ""], "--jobs: expected int, got ''"),
        (["compare", "--precision", "fp16"], "--precision: 'fp16' is not one of ['fp32', 'bf16', 'auto']"),
        (["compare", "-g", "dummy_intensity", "--compile", "on"], "dummy_intensity's engine has no such setting"),
        (["train", "-g", "dummy_intensity", "--data", "d.npz", "--out", "m", "-o", "rate=1e999"], "not a finite"),
    ],
)
def test_bad_settings_are_one_line_and_exit_2(invoke, tmp_path, monkeypatch, args, words, one_line_error):
    monkeypatch.chdir(tmp_path)
    args = [*args, "--out", "x.npz"] if args[0] == "simulate" else args
    args = [*args, "--out", "c"] if args[0] == "compare" else args
    line = one_line_error(invoke(*args, host=_dummy_host()))
    assert words in line


def test_an_unsupported_engine_value_is_refused_while_planning_not_in_a_child():
    """pinn_tf's TensorFlow engine declares precision fp32/auto and no compile: both refusals come
    from the spec, before any process starts (no TensorFlow import needed)."""
    from ptycho_pinn_tf.settings import SETTINGS

    from ptycho_core.registry import GeneratorSpec

    spec = GeneratorSpec(name="tf_like", summary="s", factory="m:f", framework="tensorflow", engine_settings=SETTINGS)
    with pytest.raises(UsageError, match=r"tf_like --precision: 'bf16' is not one of \['fp32', 'auto'\]"):
        spec.train_config({"precision": "bf16"})
    with pytest.raises(UsageError, match="--compile: tf_like's engine has no such setting"):
        spec.train_config({"compile": "on"})
    assert spec.train_config({"precision": "auto"}).engine == {"precision": "auto"}
    torch_spec = GeneratorSpec(name="t", summary="s", factory="m:f", framework="torch")
    assert torch_spec.train_config().engine == {"precision": "fp32", "compile": "off"}


def test_the_sim_help_lists_every_setting_from_its_declaration(invoke):
    """`--sim`'s help is generated: every SimConfig key (pupil_radius too) with its type and range."""
    for command in ("simulate", "compare", "sweep"):
        text = " ".join(invoke(command, "--help").output.split())
        for s in SimConfig.settings():
            assert " ".join(s.describe().split()) in text, (command, s.name)
    assert "pupil_radius (float, 0 .. 4096, default 0)" in " ".join(invoke("simulate", "--help").output.split())


def test_compare_train_and_reconstruct_options_come_from_the_declarations(invoke):
    compare = " ".join(invoke("compare", "--help").output.split())
    assert "--gridsize INT Patterns per group: gridsize**2. [1 .. 4] [default: 2]" in compare
    assert "--precision [fp32|bf16|auto]" in compare and "--compile [off|on]" in compare
    train = " ".join(invoke("train", "--help").output.split())
    assert "--epochs INT Training epochs. [>= 1] [default: 20, or the generator's own]" in train
    reconstruct = " ".join(invoke("reconstruct", "--help").output.split())
    assert "--seed INT Seed of an iterative generator. [0 .. 4294967295]" in reconstruct


def test_option_as_the_docs_showed_it_is_the_one_setting_type():
    """A plugin written last week builds `Option(type, default, help, choices=..., min=..., max=...)`."""
    from ptycho_core.registry import Option

    width = Option("int", 16, "hidden channels", min=1)
    assert isinstance(width, Setting) and width.parse("8", "mynet.width") == 8
    assert Option("str", "gelu", "activation", ["gelu", "relu"]).choices == ("gelu", "relu")
    with pytest.raises(UsageError, match="mynet.width: 0 is below its minimum 1"):
        width.parse("0", "mynet.width")
    with pytest.raises(ValueError, match="setting type must be one of"):
        Option("complex", 1j, "no such type")
