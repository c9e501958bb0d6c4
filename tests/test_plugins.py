"""Plugin discovery and isolation (docs/design.md#plugins), seen through the CLI.

Entry points are faked by monkeypatching `importlib.metadata.entry_points` (as used by
`ptycho_core.plugins`), and once for real: a temporary dist-info directory on PYTHONPATH in a
subprocess.
"""

import json
import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from ptycho_cli.main import State, cli
from ptycho_core import plugins as plugins_module
from ptycho_core.errors import PluginError
from ptycho_core.hookspecs import hookimpl
from ptycho_core.plugins import PluginHost
from ptycho_core.registry import GeneratorSpec, Option, StitcherSpec


def generator_plugin(*names, options=None):
    """A plugin object registering numpy generators called `names`."""

    class Plugin:
        @hookimpl
        def ptycho_register_generators(self, register):
            for name in names:
                register(
                    GeneratorSpec(
                        name=name,
                        summary=f"test generator {name}",
                        framework="numpy",
                        requires=("numpy",),
                        factory="ptycho_core.testing.dummies:build_zero",
                        options=options or {},
                    )
                )

    return Plugin()


class FailingHookPlugin:
    @hookimpl
    def ptycho_register_generators(self, register):
        register(GeneratorSpec(name="half", summary="never registered", factory="x:y"))
        raise RuntimeError("boom in the hook")


class UnknownHookPlugin:
    @hookimpl
    def ptycho_register_generators(self, register):
        register(GeneratorSpec(name="typo_gen", summary="unused", factory="x:y"))

    @hookimpl
    def ptycho_register_modles(self, register):  # a typo: no such hook
        pass


class FakeEntryPoint:
    """Enough of importlib.metadata.EntryPoint for `PluginHost.load_entry_points`."""

    def __init__(self, name, target, dist, version="1.0"):
        self.name = name
        self.value = f"{name.replace('-', '_')}_module"
        self.dist = SimpleNamespace(name=dist, version=version)
        self._target = target

    def load(self):
        if isinstance(self._target, BaseException):
            raise self._target
        return self._target


@pytest.fixture
def fake_entry_points(monkeypatch):
    """Install fake `ptycho` entry points: `fake_entry_points(ep, ep, ...)`."""

    def install(*eps):
        def entry_points(group=None, **_):
            return [ep for ep in eps] if group == plugins_module.ENTRY_POINT_GROUP else []

        monkeypatch.setattr(plugins_module.metadata, "entry_points", entry_points)

    return install


def _names(result) -> list[str]:
    return [g["name"] for g in json.loads(result.stdout)]


def _plugins_json(result) -> dict:
    return {p["distribution"]: p for p in json.loads(result.stdout)}


# --- in-process registration --------------------------------------------------------------------


def test_a_plugin_registered_in_process_appears_and_disappears(core_host, invoke):
    assert _names(invoke("list-generators", "--json")) == []
    with core_host.registered(generator_plugin("toy"), "toy-plugin", distribution="ptycho-toy", version="0.3"):
        records = json.loads(invoke("list-generators", "--json").stdout)
        assert [(r["name"], r["plugin"], r["version"], r["status"]) for r in records] == [
            ("toy", "ptycho-toy", "0.3", "available")
        ]
        assert "toy" in invoke("list-generators").stdout
    assert _names(invoke("list-generators", "--json")) == []


def test_an_import_failure_is_reported_and_listing_keeps_working(fake_entry_points, invoke):
    fake_entry_points(
        FakeEntryPoint("broken", ImportError("No module named 'torchish'"), "ptycho-broken"),
        FakeEntryPoint("good", generator_plugin("good_gen"), "ptycho-good"),
    )
    host = PluginHost()
    listing = invoke("list-generators", host=host)
    assert listing.exit_code == 0 and "good_gen" in listing.stdout
    assert "plugin problem" in listing.stderr
    report = invoke("plugins", "--json", host=host)
    assert report.exit_code == 0
    by_dist = _plugins_json(report)
    assert "torchish" in by_dist["ptycho-broken"]["error"]
    assert by_dist["ptycho-good"]["problems"] == []
    text = invoke("plugins", host=host)
    assert text.exit_code == 0 and "problem: ptycho-broken: failed to import" in text.stdout
    assert by_dist["ptycho-broken"]["version"] == "1.0", "the version comes from the distribution's metadata"
    broken_row = next(line for line in text.stdout.splitlines() if line.startswith("ptycho-broken"))
    assert "1.0" in broken_row.split()
    described = invoke("describe", "broken_gen", host=host)
    assert described.exit_code == 2
    assert "plugin ptycho-broken failed to import, see `ptycho plugins`" in described.stderr


def test_a_plugin_whose_import_exits_does_not_take_the_cli_down(fake_entry_points, invoke):
    fake_entry_points(FakeEntryPoint("exits", SystemExit(3), "ptycho-exits"))
    host = PluginHost()
    assert invoke("list-generators", host=host).exit_code == 0
    assert "SystemExit" in _plugins_json(invoke("plugins", "--json", host=host))["ptycho-exits"]["error"]


def test_a_failing_hook_is_reported_and_registers_nothing(core_host, invoke):
    with (
        core_host.registered(FailingHookPlugin(), "failing", distribution="ptycho-failing"),
        core_host.registered(generator_plugin("fine"), "fine", distribution="ptycho-fine"),
    ):
        assert _names(invoke("list-generators", "--json")) == ["fine"]
        problems = _plugins_json(invoke("plugins", "--json"))["ptycho-failing"]["problems"]
        assert any("boom in the hook" in p for p in problems)


class ExitingHookPlugin:
    @hookimpl
    def ptycho_register_generators(self, register):
        register(GeneratorSpec(name="exiting_gen", summary="never registered", factory="x:y"))
        raise SystemExit(4)


class CallbackMisusePlugin:
    """Registers what `mode` says: something that is not a spec, a spec of the wrong kind, or a
    name twice; each a plugin bug the host reports without registering anything of that hook."""

    def __init__(self, mode):
        self.mode = mode

    @hookimpl
    def ptycho_register_generators(self, register):
        spec = GeneratorSpec(name="misused_gen", summary="s", factory="x:y")
        register(spec)
        if self.mode == "not-a-spec":
            register({"name": "dict_gen"})
        elif self.mode == "wrong-kind":
            register(StitcherSpec(name="stitch_as_gen", summary="s", factory="x:y"))
        else:
            register(spec)


def test_a_hook_that_calls_sys_exit_is_reported_and_the_cli_keeps_working(core_host, invoke):
    with (
        core_host.registered(ExitingHookPlugin(), "exiting", distribution="ptycho-exiting"),
        core_host.registered(generator_plugin("fine"), "fine", distribution="ptycho-fine"),
    ):
        listing = invoke("list-generators", "--json")
        assert listing.exit_code == 0 and _names(listing) == ["fine"]
        problems = _plugins_json(invoke("plugins", "--json"))["ptycho-exiting"]["problems"]
        assert problems == ["hook ptycho_register_generators failed: SystemExit: 4"]


@pytest.mark.parametrize(
    "mode, message",
    [
        ("not-a-spec", "TypeError: register() expects a GeneratorSpec, got dict"),
        ("wrong-kind", "TypeError: register() expects a GeneratorSpec, got StitcherSpec"),
        ("twice", "ValueError: generator 'misused_gen' registered twice by the same plugin"),
    ],
)
def test_register_misuse_is_a_problem_of_that_plugin_only(core_host, invoke, mode, message):
    with (
        core_host.registered(CallbackMisusePlugin(mode), "misuse", distribution="ptycho-misuse"),
        core_host.registered(generator_plugin("fine"), "fine", distribution="ptycho-fine"),
    ):
        assert _names(invoke("list-generators", "--json")) == ["fine"]
        problems = _plugins_json(invoke("plugins", "--json"))["ptycho-misuse"]["problems"]
        assert problems == [f"hook ptycho_register_generators failed: {message}"]


def test_registering_the_same_plugin_name_twice_is_reported_not_raised(core_host, invoke):
    with core_host.registered(generator_plugin("first"), "same", distribution="ptycho-first"):
        core_host.register(generator_plugin("second"), "same", distribution="ptycho-second")
        assert _names(invoke("list-generators", "--json")) == ["first"]
        entry = _plugins_json(invoke("plugins", "--json"))["ptycho-second"]
        assert "cannot register plugin 'same'" in entry["error"]


def test_an_unknown_hook_is_reported(core_host, invoke):
    core_host.register(UnknownHookPlugin(), "typo", distribution="ptycho-typo")
    result = invoke("plugins", "--json")
    assert result.exit_code == 0
    entry = _plugins_json(result)["ptycho-typo"]
    assert "ptycho_register_modles" in entry["error"]
    assert "typo_gen" not in _names(invoke("list-generators", "--json"))


def test_strict_mode_turns_plugin_problems_into_exit_2(fake_entry_points, monkeypatch, one_line_error):
    fake_entry_points(FakeEntryPoint("broken", ImportError("nope"), "ptycho-broken"))
    monkeypatch.setenv("PTYCHO_STRICT_PLUGINS", "1")
    monkeypatch.delenv("PTYCHO_LOAD_PLUGINS", raising=False)
    runner = CliRunner()
    for command in (["plugins"], ["list-generators"], ["list-stitchers", "--json"]):
        line = one_line_error(runner.invoke(cli, command, obj=State()))
        assert "PTYCHO_STRICT_PLUGINS=1" in line and "ptycho-broken" in line
    monkeypatch.setenv("PTYCHO_STRICT_PLUGINS", "0")
    assert runner.invoke(cli, ["plugins"], obj=State()).exit_code == 0


def test_strict_host_raises_on_an_unknown_hook():
    host = PluginHost(load="", strict=True)
    host.register(UnknownHookPlugin(), "typo", distribution="ptycho-typo")
    with pytest.raises(PluginError, match="unknown hook"):
        host.registry()


def test_a_name_registered_by_two_distributions_needs_a_qualified_name(core_host, invoke, one_line_error):
    opts = {"width": Option("int", 8, "channels")}
    with (
        core_host.registered(generator_plugin("twin", options=opts), "a", distribution="dist-a"),
        core_host.registered(generator_plugin("twin"), "b", distribution="dist-b"),
    ):
        assert _names(invoke("list-generators", "--json")) == ["twin", "twin"]
        problems = _plugins_json(invoke("plugins", "--json"))["dist-a"]["problems"]
        assert any("dist-a:twin" in p and "dist-b:twin" in p for p in problems)
        line = one_line_error(invoke("describe", "twin"))
        assert "dist-a:twin" in line and "dist-b:twin" in line
        card = invoke("describe", "dist-a:twin")
        assert card.exit_code == 0 and "width" in card.stdout and "dist-a" in card.stdout
        assert json.loads(invoke("describe", "dist-b:twin", "--json").stdout)["distribution"] == "dist-b"


@pytest.mark.parametrize(
    "load, expected",
    [(None, ["alpha_gen", "beta_gen"]), ("", []), ("ptycho-beta", ["beta_gen"]), ("Ptycho_Alpha, x", ["alpha_gen"])],
    ids=["unset-all", "empty-none", "one", "normalised-list"],
)
def test_ptycho_load_plugins_selects_distributions(fake_entry_points, load, expected):
    fake_entry_points(
        FakeEntryPoint("alpha", generator_plugin("alpha_gen"), "ptycho-alpha"),
        FakeEntryPoint("beta", generator_plugin("beta_gen"), "ptycho-beta"),
    )
    environ = {} if load is None else {"PTYCHO_LOAD_PLUGINS": load}
    reg = PluginHost.from_environment(environ).registry()
    assert [g.name for g in reg.generators()] == expected
    assert [s.name for s in reg.stitchers()] == ["gauge", "mean", "probe_weighted"]  # built-ins always load


# --- real entry points ----------------------------------------------------------------------------


def _write_distribution(root, dist, module, source):
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[ptycho]\n{module} = {module}\n")


def test_real_entry_points_are_loaded_one_by_one(tmp_path):
    _write_distribution(
        tmp_path,
        "ptycho-good-ep",
        "good_ep",
        """
        from ptycho_core.hookspecs import hookimpl
        from ptycho_core.registry import GeneratorSpec

        @hookimpl
        def ptycho_register_generators(register):
            register(GeneratorSpec(name="good_ep_gen", summary="ok", factory="good_ep:build"))
        """,
    )
    _write_distribution(tmp_path, "ptycho-bad-ep", "bad_ep", "import not_a_real_module_xyz\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path), PTYCHO_LOAD_PLUGINS="ptycho-good-ep,ptycho-bad-ep")
    env.pop("PTYCHO_STRICT_PLUGINS", None)

    def ptycho(*args, **extra):
        return subprocess.run(
            [sys.executable, "-m", "ptycho_cli", *args],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )

    listing = ptycho("list-generators", "--json")
    assert listing.returncode == 0, listing.stderr
    assert [g["name"] for g in json.loads(listing.stdout)] == ["good_ep_gen"]
    report = ptycho("plugins", "--json")
    assert report.returncode == 0
    by_dist = {p["distribution"]: p for p in json.loads(report.stdout)}
    assert by_dist["ptycho-good-ep"]["version"] == "1.0"
    assert "not_a_real_module_xyz" in by_dist["ptycho-bad-ep"]["error"]
    strict = ptycho("plugins", PTYCHO_STRICT_PLUGINS="1")
    assert strict.returncode == 2 and "Traceback" not in strict.stderr
    assert len(strict.stderr.strip().splitlines()) == 1
