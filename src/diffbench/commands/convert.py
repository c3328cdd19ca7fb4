"""``diffbench convert open-clip SRC --out DIR``: an open_clip CLIP checkpoint as a transformers folder.

    diffbench convert open-clip hf-hub:ORG/REPO --out my-clip              # an open_clip repo on the Hub
    diffbench convert open-clip local-dir:./ckpt --out my-clip             # the same layout in a folder
    diffbench convert open-clip ViT-L-14 --checkpoint model.pt --out my-clip  # built-in name + weights file
    diffbench convert open-clip weights.pt --model-config cfg.json --out my-clip

The folder loads with ``AutoModel`` / ``AutoProcessor`` and runs with ``diffbench eval vismin --model DIR``;
open_clip itself (and torchvision) is not needed. See ``diffbench.convert.open_clip``.
"""

from __future__ import annotations


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("convert", help="convert a checkpoint into a transformers model folder")
    formats = parser.add_subparsers(dest="format", metavar="FORMAT", required=True)
    open_clip = formats.add_parser(
        "open-clip", help="an open_clip CLIP checkpoint -> a transformers CLIPModel folder",
        description="SRC: hf-hub:ORG/REPO, local-dir:PATH, a built-in open_clip model name with --checkpoint, "
                    "or a weights file with --model-config.")
    open_clip.add_argument("source", metavar="SRC", help="what open_clip.create_model_and_transforms would take")
    open_clip.add_argument("--out", required=True, help="the folder to write (must be new or empty)")
    open_clip.add_argument("--checkpoint", default=None, help="weights file (open_clip's `pretrained` as a path)")
    open_clip.add_argument("--model-config", default=None,
                           help="open_clip model config JSON (model_configs/<name>.json or open_clip_config.json)")
    open_clip.add_argument("--tokenizer", default=None,
                           help="transformers tokenizer id or folder (default: the config's hf_tokenizer_name, "
                                "else openai/clip-vit-base-patch32)")
    gelu = open_clip.add_mutually_exclusive_group()
    gelu.add_argument("--quick-gelu", dest="quick_gelu", action="store_true", default=None,
                      help="use QuickGELU whatever the config says (OpenAI-trained weights)")
    gelu.add_argument("--no-quick-gelu", dest="quick_gelu", action="store_false",
                      help="use exact GELU whatever the config says")
    open_clip.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16", "keep"),
                           help="weights dtype in the folder (default float32, as the paper scores)")
    open_clip.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    open_clip.set_defaults(func=run_open_clip)


def run_open_clip(args) -> int:
    from diffbench.convert.open_clip import convert_open_clip

    out = convert_open_clip(args.source, args.out, checkpoint=args.checkpoint, model_config=args.model_config,
                            tokenizer=args.tokenizer, quick_gelu=args.quick_gelu, dtype=args.dtype,
                            overwrite=args.overwrite)  # an --out in the way: FileExistsError, exit 2 (diffbench.cli)
    print(f"wrote {out} (transformers CLIPModel + CLIPProcessor); run it with: diffbench eval vismin --model {out}")
    return 0
