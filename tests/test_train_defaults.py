"""Per-generator training defaults (`GeneratorSpec.train_defaults`): an explicit value (CLI or
API) wins over the plugin's default, which wins over TrainConfig's; the resolved TrainConfig is
what runs, what run.json records, what the resume hash covers, and what `ptycho describe` shows."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from ptycho_cli.main import State, cli
from ptycho_core import compare
from ptycho_core.generator import TrainConfig, train_fields, train_settings
from ptycho_core.harness import plan as planning
from ptycho_core.hookspecs import hookimpl
from ptycho_core.io import save_dataset
from ptycho_core.plugins import PluginHost
from ptycho_core.registry import GeneratorSpec
from ptycho_core.simulate import SimConfig, simulate
from ptycho_core.testing import dummies

TINY = SimConfig(train_objects=1, patch_size=16, object_size=48, step=4)
DEFAULTS = {"epochs": 4, "lr": 2e-3, "batch_size": 8}


def _with_defaults() -> GeneratorSpec:
    base = next(s for s in dummies.specs() if s.name == "dummy_intensity")
    return dataclasses.replace(base, name="dummy_defaults", train_defaults=DEFAULTS)


class _Plugin:
    @hookimpl
    def ptycho_register_generators(self, register):
        register(_with_defaults())
        register(next(s for s in dummies.specs() if s.name == "dummy_intensity"))


def _host() -> PluginHost:
    host = PluginHost(load="")
    host.register(_Plugin(), "ptycho-defaults")
    return host


def test_explicit_values_win_over_plugin_defaults_which_win_over_trainconfig():
    spec = _with_defaults()
    assert spec.train_config() == TrainConfig(epochs=4, lr=2e-3, batch_size=8)
    assert spec.train_config({"epochs": 2}) == TrainConfig(epochs=2, lr=2e-3, batch_size=8)
    assert spec.train_config({"epochs": None}).epochs == 4, "None means not given"
    plain = next(s for s in dummies.specs() if s.name == "dummy_intensity")
    plans = planning.make_plans(
        [spec, plain], {spec.qualified_name: {}, plain.qualified_name: {}}, {"lr": 0.01}, seeds=2
    )
    assert [(p.name, p.config.epochs, p.config.lr, p.config.seed) for p in plans] == [
        ("dummy_defaults-seed0", 4, 0.01, 0),
        ("dummy_defaults-seed1", 4, 0.01, 1),
        ("dummy_intensity-seed0", 20, 0.01, 0),
        ("dummy_intensity-seed1", 20, 0.01, 1),
    ]


def test_plugin_defaults_may_not_set_the_shared_split_or_bad_values():
    with pytest.raises(ValueError, match="may not set seed"):
        GeneratorSpec(name="x", summary="", factory="m:f", train_defaults={"seed": 3})
    with pytest.raises(ValueError, match="bad train_defaults"):
        GeneratorSpec(name="x", summary="", factory="m:f", train_defaults={"epochs": 0})
    with pytest.raises(ValueError, match="bad train_defaults"):
        GeneratorSpec(name="x", summary="", factory="m:f", train_defaults={"no_such_field": 1})


def test_every_option_name_is_a_trainconfig_field_with_one_meaning():
    names = {s.name: s.field for s in train_settings()}
    assert names["train_timeout"] == "timeout" and "timeout" not in names
    # every field but `engine` (the engine's own settings, declared by the engine) is a declared setting
    assert set(names.values()) == {f.name for f in dataclasses.fields(TrainConfig)} - {"engine"}
    assert train_fields({"train_timeout": 5.0, "timeout": 9.0, "epochs": None}) == {"timeout": 5.0}


def test_describe_shows_the_resolved_training_defaults_and_their_source():
    result = CliRunner().invoke(cli, ["describe", "dummy_defaults"], obj=State(host=_host()))
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split()[1:] for line in result.output.splitlines() if line.startswith("--")}
    assert lines["--epochs"] == ["4", "plugin"] and lines["--lr"] == ["0.002", "plugin"]
    assert lines["--patience"] == ["5", "ptycho"] and lines["--train-timeout"] == ["0.0", "ptycho"]
    as_json = CliRunner().invoke(cli, ["describe", "dummy_defaults", "--json"], obj=State(host=_host()))
    assert json.loads(as_json.output)["train_config"]["batch_size"] == 8


def test_train_uses_the_plugin_defaults_unless_a_flag_is_given(tmp_path):
    data = save_dataset(simulate(TINY), tmp_path / "d.npz")
    for args, epochs in (([], 4), (["--epochs", "2"], 2)):
        out = tmp_path / f"m{epochs}"
        cmd = ["train", "-g", "dummy_defaults", "--data", str(data), "--out", str(out), *args]
        result = CliRunner().invoke(cli, cmd, obj=State(host=_host()))
        assert result.exit_code == 0, result.output
        config = json.loads((out / "config.json").read_text())["train_config"]
        assert (config["epochs"], config["lr"], config["batch_size"]) == (epochs, 2e-3, 8)


def test_compare_runs_each_generator_with_its_resolved_config(tmp_path):
    out = tmp_path / "cmp"
    result = compare.run(["dummy_defaults", "dummy_intensity"], simulate=TINY, host=_host(), out=out, patience=3)
    assert result.exit_code == 0
    own = json.loads((out / "runs" / "dummy_defaults" / "run.json").read_text())["train_config"]
    plain = json.loads((out / "runs" / "dummy_intensity" / "run.json").read_text())["train_config"]
    assert (own["epochs"], own["lr"], own["patience"]) == (4, 2e-3, 3)
    assert (plain["epochs"], plain["lr"], plain["patience"]) == (20, 1e-3, 3)
    generators = {g["name"]: g for g in result.provenance["generators"]}
    assert generators["dummy_defaults"]["train_config"]["epochs"] == 4
