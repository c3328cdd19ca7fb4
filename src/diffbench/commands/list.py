"""``diffbench list [tasks|datasets|presets]``: what ``diffbench eval`` can run, on what, and the paper's rows.

    diffbench list             # all three
    diffbench list tasks       # the evaluation tasks and the model kinds each takes
    diffbench list datasets    # the dataset builders, their configurations, and which are built here
    diffbench list presets     # the VisMin paper's rows: preset name, backend, model id, protocol
"""

from __future__ import annotations


WHAT = ("tasks", "datasets", "presets")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("list", help="list tasks, datasets and presets",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="?", choices=WHAT, default=None, help="one list (default: all three)")
    parser.set_defaults(func=run)


def tasks_lines() -> list[str]:
    from diffbench import tasks

    lines = []
    for name, task in sorted(tasks.registry().items()):
        lines.append(f"  {name:<22} {' or '.join(task.kinds)} models; {task.summary}")
    return lines


def datasets_lines() -> list[str]:
    from diffbench.data import building
    from diffbench.data.hub_folders import available

    lines = []
    for name in available("datasets"):
        configs = building.config_names(name)
        built = [config for config in configs if building.current_build(name, config) is not None]
        # `--source` defaults to the Hub, and only some datasets have an official Hub repo: name a source that works.
        state = f"built: {', '.join(built)}" if built else f"not built (diffbench build {name} --source DIR|sample)"
        default = building.default_config(name)
        shown = ", ".join(configs) + (f" (default {default})" if len(configs) > 1 else "")
        lines.append(f"  {name:<22} configurations: {shown}; {state}")
    return lines


def presets_lines() -> list[str]:
    from diffbench.vismin import presets

    lines = []
    for preset in presets.PRESETS.values():
        protocol = preset.protocol()
        said = [protocol.get("answer") or "similarity"]  # a contrastive row records its similarity, no answer
        if preset.max_new_tokens:
            said.append(f"{preset.max_new_tokens} new tokens")
        if preset.image_handling:
            said.append(f"{preset.image_handling} images")
        said.append(preset.dtype if preset.backend != presets.OPENAI_API else "API")
        if preset.needs_remote_code:
            said.append("needs --trust-remote-code")
        if not preset.public_weights:
            said.append("no public weights")
        lines.append(f"  {preset.name:<27} {preset.table:<10} {preset.table_name!r:<20} {preset.backend:<24} "
                     f"{preset.model_id} ({preset.id_status}); {', '.join(said)}")
    return lines


def run(args) -> int:
    sections = {"tasks": ("Tasks (diffbench eval TASK --model ...)", tasks_lines),
                "datasets": ("Datasets (diffbench build NAME)", datasets_lines),
                "presets": ("Presets: the VisMin paper's rows (diffbench eval vismin --preset NAME)", presets_lines)}
    chosen = [args.what] if args.what else list(WHAT)
    for i, what in enumerate(chosen):
        title, lines = sections[what]
        if i:
            print()
        print(title)
        print("\n".join(lines()))
    return 0
