"""``diffbench eval TASK --model ID_OR_PATH``: run a Hugging Face model on a benchmark and score it.

    diffbench eval vismin                      # the embedded tiny CLIP, on the built bench
    diffbench eval vismin --model openai/clip-vit-base-patch32 --out runs/clip-b32
    diffbench eval vismin --model llava-hf/llava-v1.6-mistral-7b-hf --image-handling combined \\
        --max-new-tokens 64 --out runs/llava      # the paper's protocol: generate, lenient parser
    diffbench eval vismin --preset "Idefics2"  # a published row with the paper's settings
    diffbench eval spot_the_diff --model llava-hf/llava-1.5-7b-hf --out runs/std-llava
    accelerate launch --num_processes 8 -m diffbench eval vismin --model ...   # several GPUs
    diffbench eval --tasks vismin,omnidiff --model llava-hf/llava-1.5-7b-hf --out runs/llava  # one model load
    diffbench eval --config run.yaml --limit 20   # options from a YAML file; the command line wins

``diffbench list tasks`` names the tasks. VisMin takes contrastive models (CLIP, SigLIP, anything with
``get_image_features`` and ``get_text_features``; float32 unless ``--dtype`` says otherwise, as the
official code) and chat models (``AutoModelForImageTextToText``: greedy generation read by the official
lenient parser, or ``--answer likelihood``); the difference-captioning tasks take chat models.
``--out`` receives the official submission file, ``results.json``, ``results.md``, ``results.png``
and ``run.json`` (the protocol, versions, weights and data fingerprints); the same command again resumes.
Files of those names that diffbench did not write there are refused before any work (``--overwrite``
replaces them); the submission file and the report move in as one set (:mod:`diffbench.files`).

``--tasks a,b`` runs several tasks on one loaded model, each into ``OUT/<task>/`` (without ``--out``:
``runs/TASK-MODEL`` each, where a single-task run of it writes), every task's model kind, data and folder
checked before any runs. ``--config FILE.yaml`` holds any option (keys: the long option names, ``-`` or
``_``; ``task`` or ``tasks`` for the tasks; paths in it read from the current folder, as on the command
line); an option on the command line wins over the file. run.json's ``invocation`` records every option
as resolved, which the file set, and the file's path and sha256.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffbench.commands._arguments import add_uncertainty_arguments
from diffbench.harness.options import ANSWER_MODES, DTYPES, IMAGE_HANDLING, parse_limit


class Unset:
    """The default of every option: the command line did not give it (the config file's value, else the
    option's own default, is taken in :func:`settle`)."""

    def __repr__(self) -> str:
        return "<unset>"


UNSET = Unset()
TASK_KEYS = ("task", "tasks")  # the config file's names for the positional TASK and --tasks
NOT_FROM_FILE = ("help", "config_file", "tasks")  # options the file does not set as it sets the others


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a Hugging Face model on a benchmark",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("name", metavar="TASK", nargs="?", default=None,
                        help="vismin, or a difference-captioning dataset (omnidiff, spot_the_diff, clevr_change, "
                             "clevr_dc, image_editing_request): `diffbench list tasks`")
    parser.add_argument("--tasks", default=None, metavar="A,B",
                        help="several tasks, separated by commas, run on one loaded model instead of TASK: each "
                             "writes OUT/<task>/ (without --out: runs/TASK-MODEL each); a task the model's kind "
                             "does not fit is refused before any runs")
    parser.add_argument("--config", dest="config_file", type=Path, default=None, metavar="FILE.yaml",
                        help="a YAML file of options (keys: the long option names, with - or _; task or tasks "
                             "for the tasks); options on the command line win; run.json records the file's "
                             "path and sha256")
    parser.add_argument("--model", default=None,
                        help="Hub model id or local folder (default: the embedded tiny CLIP, diffbench-tiny-clip)")
    parser.add_argument("--preset", default=None,
                        help="a published VisMin row's model and settings (`diffbench list presets`); "
                             "options given beside it override it")
    parser.add_argument("--revision", default=None, help="model revision (branch, tag or commit)")
    parser.add_argument("--dataset-config", dest="config", default=None,
                        help="dataset configuration (default: the dataset's default)")
    parser.add_argument("--split", default="test", help="dataset split (default: test)")
    parser.add_argument("--data-files", nargs="+", type=Path, default=None,
                        help="score these parquet files (or a save_to_disk folder, the upstream release's "
                             "included) instead of the built dataset")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: runs/TASK-MODEL)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="samples a batch (default: 64 contrastive, 4 chat); halves by itself when out of GPU memory")
    parser.add_argument("--device", default="auto", help="auto (CUDA, MPS, else CPU), cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", default=None, choices=DTYPES,
                        help="default: the preset's, else auto: float32 for contrastive models (as the official "
                             "code), the dtype a chat model's config names (float32 on the CPU when that is a "
                             "half precision); run.json's settings say which and where it came from")
    parser.add_argument("--num-workers", type=int, default=None,
                        help="image-decoding worker processes (default: the cores, shared by the processes)")
    parser.add_argument("--fast-decode", action="store_true",
                        help="decode JPEGs at a reduced scale that still covers the model's input size (faster, "
                             "pixels close to but not identical to a full decode)")
    chat = parser.add_argument_group("chat models")
    chat.add_argument("--answer", choices=ANSWER_MODES, default=None,
                      help="VisMin: generate and read the answer with the official lenient parser (default, the "
                           "paper's protocol), or compare the options' log-likelihoods")
    chat.add_argument("--max-new-tokens", type=int, default=None,
                      help="generated tokens at most (default 128, as the paper's evaluation asks)")
    chat.add_argument("--image-handling", choices=IMAGE_HANDLING, default=None,
                      help="two images as two inputs (separate, default) or pasted side by side into one "
                           "(combined: the paper's LLaVA-1.6)")
    chat.add_argument("--image-splitting", dest="image_splitting", action=argparse.BooleanOptionalAction,
                      default=None,
                      help="turn the processor's image splitting (Idefics2 and others that have it) on or off; by "
                           "default as the processor says, or as the preset's row ran (Idefics2: off, as in the "
                           "paper); run.json's settings say which and where it came from")
    chat.add_argument("--prompt-template", default=None,
                      help="a raw prompt instead of the chat template, with {images} and {question}: the paper's "
                           "LLaVA-1.6 used '{images} [INST] {question} [/INST]'")
    chat.add_argument("--prompt", default=None,
                      help="difference-captioning instruction (default: the task's own, which run.json and "
                           "results.md record)")
    api = parser.add_argument_group("OpenAI-compatible chat APIs (GPT-4o, Gemini, vLLM, TGI, transformers serve)")
    api.add_argument("--api-base", default=None,
                     help="ask this endpoint (e.g. https://api.openai.com/v1) instead of loading --model; "
                          "--model is then the API's model name")
    api.add_argument("--api-key-env", default=None,
                     help="environment variable holding the API key (default OPENAI_API_KEY); never logged or written")
    api.add_argument("--concurrency", type=int, default=4, help="API requests in flight (default 4)")
    parser.add_argument("--limit", type=limit_value, default=None, metavar="N",
                        help="a quick look: N samples (20), or a fraction of them (0.1), drawn stratified by "
                             "VisMin's category or the captions' change types (each present once N allows, the "
                             "rest in proportion), the same on any machine; the draws are nested, so a rerun "
                             "over the same --out with a larger limit (or none) keeps what was predicted and "
                             "runs only the new samples (a smaller one is refused)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow running code from the model's repository (off unless given)")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="load pickle weights (pytorch_model.bin, .pt) when there are no safetensors: "
                             "unpickling can run code, so only for checkpoints you trust")
    parser.add_argument("--overwrite", action="store_true",
                        help="discard saved predictions in --out, and replace output files there that diffbench "
                             "did not write")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    add_uncertainty_arguments(parser)
    parser.set_defaults(func=run, option_defaults=unset_defaults(parser), option_names=option_names(parser))


def unset_defaults(parser) -> dict:
    """Every option's default replaced by :data:`UNSET` (so that an option the command line gave, even at
    its default value, is told from one it did not); returns ``{dest: default}``."""
    defaults = {}
    for action in parser._actions:  # argparse has no public list of a parser's actions
        if action.option_strings and action.dest not in NOT_FROM_FILE:
            defaults[action.dest] = action.default
            action.default = UNSET
    return defaults


def option_names(parser) -> dict:
    """``{long option name without --: (action, negated)}`` for the config file (``no-progress``: negated)."""
    names = {}
    for action in parser._actions:
        if not action.option_strings or action.dest in NOT_FROM_FILE:
            continue
        for flag in action.option_strings:
            if flag.startswith("--"):
                negated = isinstance(action, argparse._StoreFalseAction) or (
                    isinstance(action, argparse.BooleanOptionalAction) and flag.startswith("--no-"))
                names[flag[2:]] = (action, negated)
    return names


def limit_value(text: str):
    """``--limit``'s value (:func:`diffbench.harness.options.parse_limit`), refused in argparse's words."""
    try:
        return parse_limit(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def read_config_file(path: Path, names: dict) -> tuple[dict, dict]:
    """``({dest: value}, {"path", "sha256"})`` from ``--config``'s YAML file: every key a long option
    (``-`` or ``_``) or ``task``/``tasks``, every value of the option's type; anything else is a one-line
    error naming the file and the key.

    >>> import tempfile
    >>> from diffbench.cli import build_parser
    >>> path = Path(tempfile.mkdtemp()) / "run.yaml"
    >>> _ = path.write_text("batch_size: 4\\nno-progress: true\\nlimit: 0.1\\n")
    >>> names = build_parser().parse_args(["eval", "vismin"]).option_names
    >>> read_config_file(path, names)[0]
    {'batch_size': 4, 'progress': False, 'limit': 0.1}
    >>> _ = path.write_text("batch-size: four\\n")
    >>> read_config_file(path, names)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: .../run.yaml: batch-size: expected a whole number, got 'four' (str)
    """
    import hashlib

    import yaml

    hint = "" if path.suffix in (".yaml", ".yml") else "; the dataset configuration is --dataset-config"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such config file (--config takes a YAML file of options{hint})") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{path}: is a folder; --config takes a YAML file of options{hint}") from None
    try:
        table = yaml.safe_load(data) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"{path}: not valid YAML{where}: {getattr(err, 'problem', None) or err}") from None
    if not isinstance(table, dict):
        raise ValueError(f"{path}: expected option names and their values (a mapping), got a {type(table).__name__}")
    values, keys = {}, {}
    for key, value in table.items():
        dest, value = config_entry(path, key, value, names)
        if dest in keys:
            raise ValueError(f"{path}: {keys[dest]!r} and {key!r} set the same option")
        keys[dest], values[dest] = key, value
    return values, {"path": str(path.resolve()), "sha256": hashlib.sha256(data).hexdigest()}


def config_entry(path: Path, key, value, names: dict) -> tuple[str, object]:
    """``(dest, value)`` for one key of the config file, checked as the command line would check it."""
    if not isinstance(key, str):
        raise ValueError(f"{path}: {key!r}: keys are option names (model, batch-size, ...), not {type(key).__name__}s")
    name = key.replace("_", "-")
    if name in TASK_KEYS:
        if not (isinstance(value, str) or isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ValueError(f"{path}: {key}: expected a task name or a list of them, got {value!r}")
        return name, ",".join(value) if isinstance(value, list) else value
    if name == "config":
        raise ValueError(f"{path}: config: a config file cannot name another; the dataset configuration is "
                         "dataset-config")
    if name not in names:
        import difflib

        close = difflib.get_close_matches(name, [*names, *TASK_KEYS], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{path}: {key}: unknown option{hint} (the keys are diffbench eval's long options)")
    action, negated = names[name]
    return action.dest, option_value(f"{path}: {key}", action, negated, value)


def option_value(where: str, action, negated: bool, value):
    """A config file's ``value`` for ``action``, of the type the command line gives it."""
    kind = type(value).__name__
    if action.nargs == 0 or isinstance(action, argparse.BooleanOptionalAction):  # a switch
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {value!r} ({kind})")
        return not value if negated else value
    if action.nargs == "+":
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(item, str) for item in items):
            raise ValueError(f"{where}: expected a path or a list of paths, got {value!r}")
        return [action.type(item) for item in items]
    if action.type is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{where}: expected a whole number, got {value!r} ({kind})")
    elif action.type in (None, Path):
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a text value, got {value!r} ({kind}); quote it in the YAML file")
    elif isinstance(value, bool) or not isinstance(value, (int, float, str)):  # --limit: a number
        raise ValueError(f"{where}: expected a number, got {value!r} ({kind})")
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"{where}: expected one of {', '.join(map(str, action.choices))}, got {value!r}")
    if action.type in (None, int):
        return value
    try:
        return action.type(str(value))
    except (argparse.ArgumentTypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None


def settle(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with what the command line left unset taken from ``--config``'s file, else the option's
    default; adds ``task_names`` (the tasks asked for), ``several`` (``--tasks`` was used),
    ``config_record`` and ``from_config_file``."""
    if getattr(args, "settled", False):
        return args
    from_file, record = {}, None
    if args.config_file is not None:
        from_file, record = read_config_file(Path(args.config_file), args.option_names)
    values = dict(vars(args))
    for dest, default in args.option_defaults.items():
        if values[dest] is UNSET:
            values[dest] = from_file.get(dest, default)
    set_by_file = [dest for dest in args.option_defaults if dest in from_file and getattr(args, dest) is UNSET]
    names, several, task_source = chosen_tasks(args, from_file)
    if task_source == "file":
        set_by_file.append("tasks" if several else "task")
    return argparse.Namespace(**{**values, "settled": True, "task_names": names, "several": several,
                                 "config_record": record, "from_config_file": tuple(set_by_file)})


def chosen_tasks(args, from_file: dict) -> tuple[list[str], bool, str]:
    """``(names, several, source)``: the command line's TASK or --tasks, else the config file's task or tasks."""
    from diffbench import tasks

    for source, single, listed in (("command line", args.name, args.tasks),
                                   ("file", from_file.get("task"), from_file.get("tasks"))):
        if single is not None and listed is not None:
            where = "the command line" if source == "command line" else str(args.config_file)
            raise ValueError(f"{where} names both a task ({single}) and --tasks ({listed}); give one")
        if listed is not None:
            return tasks.parse_task_list(listed), True, source
        if single is not None:
            tasks.get(single)  # an unknown task is an error before anything loads
            return [single], False, source
    raise ValueError("name a task (diffbench eval vismin), several (--tasks vismin,omnidiff), or a config file "
                     "holding them (--config run.yaml); `diffbench list tasks` names them")


def base_options(args: argparse.Namespace):
    """The :class:`~diffbench.harness.options.RunOptions` the command asks for, before any task resolves them
    (``task``: the first task named)."""
    from diffbench.harness.options import RunOptions

    args = settle(args)
    return RunOptions(
        model=args.model, out=args.out, task=args.task_names[0], config=args.config, split=args.split,
        data_files=args.data_files, limit=args.limit, batch_size=args.batch_size, device=args.device,
        dtype=args.dtype, num_workers=args.num_workers, fast_decode=args.fast_decode, allow_pickle=args.allow_pickle,
        answer=args.answer, prompt=args.prompt, overwrite=args.overwrite, progress=args.progress, preset=args.preset,
        trust_remote_code=args.trust_remote_code, revision=args.revision,
        max_new_tokens=args.max_new_tokens, image_handling=args.image_handling, image_splitting=args.image_splitting,
        prompt_template=args.prompt_template, api_base=args.api_base, api_key_env=args.api_key_env,
        concurrency=args.concurrency, resamples=args.resamples, seed=args.seed,
        config_file=args.config_record, from_config_file=tuple(n for n in args.from_config_file if n not in TASK_KEYS))


def options_from_args(args: argparse.Namespace):
    """The run's :class:`~diffbench.harness.options.RunOptions` (one task), resolved as the library resolves
    them (:func:`diffbench.tasks.resolve`: a ``--preset`` fills what the options beside it leave unset)."""
    from diffbench import tasks

    return tasks.resolve(base_options(args))


def run(args) -> int:
    from diffbench import tasks
    from diffbench.harness import loop

    args = settle(args)  # a bad config file or task name is an error before anything loads
    if args.several:
        by_task = tasks.run_tasks(args.task_names, base_options(args))
        outs = [options.out for options in tasks.resolve_tasks(args.task_names, base_options(args))]
        for results, out in zip(by_task.values(), outs):
            show(results, out)
        return 0
    options = options_from_args(args)
    show(loop.run(tasks.get(options.task), options), options.out)
    return 0


def show(results: dict, out: Path) -> None:
    """A run's table, and the files it wrote (nothing on processes other than the main one)."""
    from diffbench.harness import outputs

    if results:
        print((out / "results.md").read_text(encoding="utf-8"))
        files = [p for p in (*outputs.OUTPUT_FILES, outputs.RUN_FILE) if (out / p).exists()]
        print(f"wrote {out}/{{{','.join(files)}}}")
