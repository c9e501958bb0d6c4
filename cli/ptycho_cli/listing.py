"""Listing commands: list-generators, list-loaders, list-stitchers, plugins, describe.

Standard library, click and ptycho_core's light modules only (docs/design.md#layers): listing never
imports numpy or a framework; availability is checked with `importlib.util.find_spec`.
"""

from __future__ import annotations

import json

import click

from ptycho_core.registry import GeneratorSpec, LoaderSpec, Registry, StitcherSpec, spec_as_dict

NO_GENERATORS_HINT = (
    "no generators installed; try `pip install -c constraints.txt -e plugins/ptycho_fno` "
    "(or plugins/ptycho_pinn_tf, plugins/ptycho_baseline), or check PTYCHO_LOAD_PLUGINS"
)


def _registry(ctx: click.Context) -> Registry:
    return ctx.find_root().obj.registry()


def _table(headers: list[str], rows: list[list[str]], right=()) -> str:
    """A plain aligned text table at its full width (nothing cut); columns whose index is in
    `right` are right-aligned (numbers), the last column is not padded."""
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    right = set(right)
    lines = []
    for k, row in enumerate(cells):
        line = "  ".join(
            c.rjust(widths[i]) if i in right else c.ljust(widths[i]) if i < len(row) - 1 else c
            for i, c in enumerate(row)
        )
        lines.append(line.rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _problem_note(reg: Registry) -> None:
    if reg.problems:
        n = len(reg.problems)
        click.echo(f"note: {n} plugin problem{'s' if n > 1 else ''}; see `ptycho plugins`", err=True)


def _generator_record(spec: GeneratorSpec) -> dict:
    return {
        "name": spec.name,
        "qualified_name": spec.qualified_name,
        "plugin": spec.distribution,
        "version": spec.version,
        "framework": spec.framework,
        "kind": spec.kind,
        "supervised": spec.supervised,
        "requires": list(spec.requires),
        "status": spec.status(),
        "available": spec.available,
        "summary": spec.summary,
        "description": spec.description or spec.summary,
    }


def _simple_record(spec) -> dict:
    record = {
        "name": spec.name,
        "qualified_name": spec.qualified_name,
        "plugin": spec.distribution,
        "version": spec.version,
        "requires": list(spec.requires),
        "status": spec.status(),
        "available": spec.available,
        "summary": spec.summary,
        "description": spec.summary,
        "factory": spec.factory,
    }
    if isinstance(spec, LoaderSpec):
        record["extensions"] = list(spec.extensions)
    if isinstance(spec, StitcherSpec):
        record["options"] = {k: _option_record(v) for k, v in spec.options.items()}
    return record


def _option_record(opt) -> dict:
    out = {"type": opt.type, "default": opt.default, "help": opt.help}
    if opt.choices:
        out["choices"] = list(opt.choices)
    out.update({k: getattr(opt, k) for k in ("min", "max") if getattr(opt, k) is not None})
    return out


@click.command("list-generators")
@click.option("--filter", "pattern", metavar="GLOB", help="Only names matching this glob (e.g. 'fno*').")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_generators(ctx, pattern, as_json):
    """List installed generators and whether their framework is available."""
    reg = _registry(ctx)
    specs = reg.generators(pattern)
    records = [_generator_record(s) for s in specs]
    if as_json:
        _echo_json(records)
    else:
        rows = [
            [r["name"], r["plugin"], r["version"], r["framework"], r["kind"], r["status"], r["summary"]]
            for r in records
        ]
        click.echo(_table(["name", "plugin", "version", "framework", "kind", "status", "summary"], rows))
    if not reg.generators():
        click.echo(NO_GENERATORS_HINT, err=as_json)
    elif not specs:
        click.echo(f"no generator matches {pattern!r}", err=as_json)
    _problem_note(reg)


def _simple_list(ctx, kind: str, as_json: bool) -> None:
    reg = _registry(ctx)
    specs = reg.all(kind)
    records = [_simple_record(s) for s in specs]
    if as_json:
        _echo_json(records)
    else:
        if kind == "loader":
            headers = ["name", "plugin", "version", "extensions", "status", "summary"]
            rows = [
                [r["name"], r["plugin"], r["version"], " ".join(r["extensions"]), r["status"], r["summary"]]
                for r in records
            ]
        else:
            headers = ["name", "plugin", "version", "options", "status", "summary"]
            rows = [
                [r["name"], r["plugin"], r["version"], ",".join(r["options"]) or "-", r["status"], r["summary"]]
                for r in records
            ]
        click.echo(_table(headers, rows))
    _problem_note(reg)


@click.command("list-loaders")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_loaders(ctx, as_json):
    """List dataset loaders and the file extensions they read."""
    _simple_list(ctx, "loader", as_json)


@click.command("list-stitchers")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_stitchers(ctx, as_json):
    """List stitchers (how predicted patches are merged into one object)."""
    _simple_list(ctx, "stitcher", as_json)


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def plugins(ctx, as_json):
    """Show every plugin: distribution, version, hooks and any problem.

    Problems (a plugin that fails to import or to register, an unknown hook, a name registered
    twice) are reported and the exit code stays 0; PTYCHO_STRICT_PLUGINS=1 makes them fatal.
    """
    reg = _registry(ctx)
    records = []
    for info in reg.plugins:
        record = {
            "name": info["name"],
            "distribution": info.get("distribution", info["name"]),
            "version": info.get("version", ""),
            "hooks": list(info.get("hooks", [])),
            "builtin": bool(info.get("builtin", False)),
            "problems": [],
        }
        if info.get("error"):
            record["error"] = info["error"]
        records.append(record)
    for problem in reg.problems:
        owners = {p.strip() for p in problem.plugin.split(",")}
        matched = [r for r in records if r["distribution"] in owners or r["name"] in owners]
        if not matched:
            matched = [
                {
                    "name": problem.plugin,
                    "distribution": problem.plugin,
                    "version": "",
                    "hooks": [],
                    "builtin": False,
                    "problems": [],
                }
            ]
            records.extend(matched)
        for r in matched:
            if problem.message not in r["problems"]:
                r["problems"].append(problem.message)
    if as_json:
        _echo_json(records)
        return
    rows = []
    for r in records:
        hooks = ",".join(h.replace("ptycho_register_", "") for h in r["hooks"]) or "-"
        status = "ok" if not r["problems"] else f"{len(r['problems'])} problem(s)"
        rows.append([r["name"], r["distribution"], r["version"] or "-", hooks, status])
    click.echo(_table(["name", "distribution", "version", "hooks", "status"], rows))
    for r in records:
        for message in r["problems"]:
            click.echo(f"problem: {r['distribution']}: {message}")


def _find(reg: Registry, name: str):
    """The one spec called `name` (or `dist:name`) among generators, stitchers and loaders."""
    dist, _, bare = name.rpartition(":")
    found = []
    for kind in ("generator", "stitcher", "loader"):
        matches = [s for s in reg.all(kind) if s.name == bare and (not dist or s.distribution == dist)]
        found.extend((kind, s) for s in matches)
    if len(found) == 1:
        return found[0]
    from ptycho_core.errors import UsageError

    if not found:
        known = ", ".join(s.name for k in ("generator", "stitcher", "loader") for s in reg.all(k)) or "none"
        failed = sorted({p.plugin for p in reg.problems if "failed to import" in p.message})
        hint = f"; plugin {', '.join(failed)} failed to import, see `ptycho plugins`" if failed else ""
        raise UsageError(f"unknown generator, stitcher or loader {name!r} (installed: {known}){hint}")
    choices = ", ".join(f"{s.qualified_name} ({kind})" for kind, s in found)
    raise UsageError(f"name {name!r} is registered by several plugins; use one of {choices}")


@click.command("describe")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def describe(ctx, name, as_json):
    """Show a generator's (or stitcher's, loader's) card: summary, plugin, options."""
    reg = _registry(ctx)
    kind, spec = _find(reg, name)
    record = spec_as_dict(spec)
    record.update(spec=kind, status=spec.status(), available=spec.available)
    if isinstance(spec, GeneratorSpec):
        record["train_config"] = spec.train_config().to_dict()
    if as_json:
        _echo_json(record)
        return
    lines = [f"{spec.name}  ({kind})", f"  {spec.summary}"]
    if getattr(spec, "description", ""):
        lines += ["", "  " + spec.description.strip().replace("\n", "\n  ")]
    lines.append("")
    plugin = f"{spec.distribution} {spec.version}".strip() or "?"
    facts = [("plugin", plugin)]
    if isinstance(spec, GeneratorSpec):
        facts += [
            ("framework", spec.framework),
            ("kind", spec.kind),
            ("supervised", "yes" if spec.supervised else "no"),
        ]
        if spec.kind == "iterative":
            facts.append(("warm start", "yes (can refine a learned row: --refine)" if spec.warm_start else "no"))
    if isinstance(spec, LoaderSpec):
        facts.append(("extensions", " ".join(spec.extensions)))
    facts += [
        ("requires", ", ".join(spec.requires) or "-"),
        ("status", spec.status()),
        ("factory", spec.factory),
    ]
    if getattr(spec, "reference", ""):
        facts.append(("reference", spec.reference))
    width = max(len(k) for k, _ in facts)
    lines += [f"  {k.ljust(width)}  {v}" for k, v in facts]
    options = getattr(spec, "options", {})
    lines.append("")
    if options:
        command = "reconstruct" if getattr(spec, "kind", "") == "iterative" else "train"
        lines.append(f"options ({command}: --option key=value; compare: --option NAME.key=value):")
        rows = []
        for key, opt in options.items():
            help_text = opt.help + (f" ({opt.limits()})" if opt.limits() else "")
            rows.append([key, opt.type, json.dumps(opt.default), help_text])
        lines.append(_table(["option", "type", "default", "help"], rows))
    else:
        lines.append("options: none")
    if isinstance(spec, GeneratorSpec) and spec.kind == "iterative":
        lines += [
            "",
            "no training: compare's --seed, --device and --train-timeout (stop after the iteration "
            "that crosses it) apply; ptycho reconstruct --generator NAME runs it on a file",
        ]
    elif isinstance(spec, GeneratorSpec):
        lines += ["", *_training_lines(spec)]
    click.echo("\n".join(lines))


def _training_lines(spec: GeneratorSpec) -> list[str]:
    """The TrainConfig this generator trains with unless a flag says otherwise."""
    from ptycho_core.generator import train_settings

    config = spec.train_config()
    rows = []
    for s in train_settings():
        source = "plugin" if s.field in spec.train_defaults else "ptycho"
        rows.append([s.flag, json.dumps(getattr(config, s.field)), source])
    for s in spec.engine_settings:
        source = "plugin" if s.name in spec.train_defaults else f"{spec.framework} engine"
        rows.append([s.flag, json.dumps(config.engine[s.name]), source + f" ({s.limits()})"])
    head = "training (train and compare; an explicit flag wins over these defaults):"
    return [head, _table(["flag", "default", "from"], rows)]
