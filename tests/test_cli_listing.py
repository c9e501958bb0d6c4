"""`ptycho list-generators`, `list-loaders`, `list-stitchers`, `plugins`, `describe`."""

import json

from ptycho_core.hookspecs import hookimpl
from ptycho_core.registry import GeneratorSpec, Option


class ZooPlugin:
    """Two generators: one available (numpy), one needing a module that is not installed."""

    @hookimpl
    def ptycho_register_generators(self, register):
        register(
            GeneratorSpec(
                name="fno_toy",
                summary="a toy FNO",
                description="Longer text about the toy FNO.",
                framework="numpy",
                requires=("numpy",),
                factory="ptycho_core.testing.dummies:build_zero",
                reference="https://example.org/paper",
                options={
                    "modes": Option("int", 12, "Fourier modes kept"),
                    "act": Option("str", "gelu", "activation", choices=("gelu", "relu")),
                },
            )
        )
        register(
            GeneratorSpec(
                name="needs_missing",
                summary="needs a framework that is absent",
                framework="jax",
                requires=("not_installed_framework_xyz",),
                factory="nowhere:build",
                supervised=True,
            )
        )


def _with_zoo(core_host):
    return core_host.registered(ZooPlugin(), "zoo", distribution="ptycho-zoo", version="2.0")


def test_list_generators_table_shows_plugin_framework_and_status(core_host, invoke):
    with _with_zoo(core_host):
        result = invoke("list-generators")
    assert result.exit_code == 0
    header, rule, *rows = result.stdout.splitlines()
    assert header.split() == ["name", "plugin", "version", "framework", "kind", "status", "summary"]
    assert set(rule) <= {"-", " "}
    fno = next(r for r in rows if r.startswith("fno_toy"))
    assert "ptycho-zoo" in fno and "2.0" in fno and "available" in fno and "a toy FNO" in fno
    missing = next(r for r in rows if r.startswith("needs_missing"))
    assert "unavailable: missing not_installed_framework_xyz" in missing


def test_list_generators_json_has_the_documented_fields(core_host, invoke):
    with _with_zoo(core_host):
        records = json.loads(invoke("list-generators", "--json").stdout)
    assert [r["name"] for r in records] == ["fno_toy", "needs_missing"]
    for record in records:
        assert {"name", "plugin", "version", "framework", "status", "description"} <= set(record)
    assert records[0]["description"] == "Longer text about the toy FNO."
    assert records[1]["available"] is False and records[1]["supervised"] is True


def test_list_generators_filter_takes_a_glob(core_host, invoke):
    with _with_zoo(core_host):
        assert [r["name"] for r in json.loads(invoke("list-generators", "--filter", "fno*", "--json").stdout)] == [
            "fno_toy"
        ]
        result = invoke("list-generators", "--filter", "zzz*")
    assert result.exit_code == 0 and "no generator matches 'zzz*'" in result.stdout


def test_no_generators_prints_an_empty_table_and_an_install_hint(invoke):
    result = invoke("list-generators")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[0] == "name" and len(lines) == 3
    assert "no generators installed" in lines[2] and "pip install" in lines[2]
    as_json = invoke("list-generators", "--json")
    assert json.loads(as_json.stdout) == [] and "no generators installed" in as_json.stderr


def test_list_loaders_and_stitchers_show_the_built_ins(invoke):
    loaders = json.loads(invoke("list-loaders", "--json").stdout)
    assert [(r["name"], r["plugin"], r["extensions"]) for r in loaders] == [
        ("cxi", "ptycho", [".cxi", ".h5", ".hdf5"]),
        ("npz", "ptycho", [".npz"]),
        ("ptychodus", "ptycho", ["product.h5", "diffraction.h5"]),
    ]
    stitchers = json.loads(invoke("list-stitchers", "--json").stdout)
    assert [r["name"] for r in stitchers] == ["mean", "probe_weighted"]
    assert stitchers[0]["options"]["crop"] == {
        "type": "int",
        "default": 0,
        "help": stitchers[0]["options"]["crop"]["help"],
        "min": 0,
        "max": 65536,
    }
    table = invoke("list-stitchers").stdout
    assert "probe_weighted" in table and "crop" in table
    assert ".npz" in invoke("list-loaders").stdout


def test_plugins_lists_the_builtin_with_its_hooks(invoke):
    records = json.loads(invoke("plugins", "--json").stdout)
    builtin = next(r for r in records if r["distribution"] == "ptycho")
    assert builtin["builtin"] is True and builtin["problems"] == []
    assert builtin["hooks"] == ["ptycho_register_loaders", "ptycho_register_stitchers"]
    assert "loaders,stitchers" in invoke("plugins").stdout


def test_describe_prints_the_card_with_options(core_host, invoke):
    with _with_zoo(core_host):
        result = invoke("describe", "fno_toy")
        as_json = json.loads(invoke("describe", "ptycho-zoo:fno_toy", "--json").stdout)
    assert result.exit_code == 0
    out = result.stdout
    for text in ("fno_toy", "a toy FNO", "ptycho-zoo 2.0", "numpy", "available", "https://example.org/paper"):
        assert text in out
    modes = next(line for line in out.splitlines() if line.startswith("modes"))
    assert modes.split()[:3] == ["modes", "int", "12"] and "Fourier modes kept" in modes
    assert "choices: gelu, relu" in out
    assert as_json["options"]["modes"]["default"] == 12 and as_json["spec"] == "generator"
    assert as_json["status"] == "available"


def test_describe_reports_a_missing_requirement(core_host, invoke):
    with _with_zoo(core_host):
        out = invoke("describe", "needs_missing").stdout
    assert "unavailable: missing not_installed_framework_xyz" in out and "options: none" in out


def test_describe_works_for_stitchers_and_fails_cleanly_for_unknown_names(invoke, one_line_error):
    assert "crop" in invoke("describe", "mean").stdout
    line = one_line_error(invoke("describe", "no_such_model"))
    assert "no_such_model" in line and "mean" in line


def test_help_lists_the_listing_commands(invoke):
    out = invoke("--help").stdout
    for command in ("list-generators", "list-loaders", "list-stitchers", "plugins", "describe", "simulate", "inspect"):
        assert command in out
