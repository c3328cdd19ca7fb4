"""Benchmark: ``diffbench eval vismin`` against the official per-sample loop, on VisMin-sized data.

    python bench/bench_eval_vismin.py                       # 2,084 samples, ViT-B/32 and ViT-L/14-336
    python bench/bench_eval_vismin.py --n 128 --models b32  # a quick CPU look

Data: ``--n`` samples of two 640x480 JPEGs (synthetic photo-like scenes: gradients, shapes, noise; JPEG
quality 90, about the size and decode cost of COCO images) and two captions, written as one parquet
file in the benchmark's schema. Models: randomly initialised CLIP ViT-B/32 and ViT-L/14-336 (the real
architectures and preprocessing, no download). Printed side by side, per model:

- ``official loop``: the pattern of the official evaluation: per sample, decode both images, run the
  processor on 2 images + 2 captions, one forward, read the 2x2 logits back to the host.
- ``diffbench eval``: the harness end to end from the parquet file (DataLoader with worker processes
  decoding and preprocessing, batched encoders, one host sync a batch, CSV + scoring + reports), with
  and without ``--fast-decode`` (JPEG reduced-scale decoding); model loading is excluded and shown apart.
- ``encode only``: the image and text encoders alone over ready tensors already on the device (the
  floor the pipeline can approach).
- ``decode+preprocess, 1 core``: decoding and preprocessing every image in one process.

With ``--chat`` it times a chat model instead (the paper's protocol: greedy generation of every
official question, the lenient parser): the paper's loop (``evals/vlm/llava.py`` ``predict``: one
question at a time, one ``generate`` each) against ``diffbench eval`` (batched, left-padded, DataLoader
workers), and says how many answers agree (greedy decoding of padded batches can differ in the last
bits). The model is a randomly initialised tiny LLaVA (``diffbench.models.tiny``); ``--chat-image-size``
sets its vision tower's input size.

Prints figures, asserts nothing (see bench/README conventions).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

MODELS = {
    # name: (vision config, text config, projection dim, image size)
    "b32": (dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                 patch_size=32, image_size=224),
            dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8), 512, 224),
    "l14-336": (dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                     patch_size=14, image_size=336),
                dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12), 768, 336),
}
LABELS = {"b32": "CLIP ViT-B/32", "l14-336": "CLIP ViT-L/14-336"}


def scene_jpeg(seed: int, width: int = 640, height: int = 480) -> bytes:
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * rng.uniform(0.1, 0.4) + y * rng.uniform(0.1, 0.4) + rng.uniform(0, 255)) % 256
                     for _ in range(3)], axis=-1)
    base += rng.normal(0, 12, size=base.shape)  # sensor-like noise: keeps the JPEG photo-sized
    image = Image.fromarray(base.clip(0, 255).astype("uint8"))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, width - 60)), int(rng.integers(0, height - 60))
        box = [x0, y0, x0 + int(rng.integers(30, 200)), y0 + int(rng.integers(30, 200))]
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_data(folder: Path, n: int, distinct: int = 256) -> Path:
    """``n`` samples in the benchmark schema as one parquet file (``distinct`` JPEGs, reused)."""
    import datasets

    from diffbench.vismin.schema import CATEGORIES

    pool = [scene_jpeg(seed) for seed in range(min(distinct, 2 * n))]
    categories = list(CATEGORIES)
    colours = ["red", "blue", "green", "yellow", "purple", "orange"]
    rows = {"id": [], "category": [], "image_0": [], "text_0": [], "image_1": [], "text_1": []}
    for i in range(n):
        a, b = colours[i % 6], colours[(i + 1) % 6]
        rows["id"].append(f"{categories[i % 4]}/{i // 4}")
        rows["category"].append(i % 4)
        rows["image_0"].append({"bytes": pool[(2 * i) % len(pool)], "path": None})
        rows["image_1"].append({"bytes": pool[(2 * i + 1) % len(pool)], "path": None})
        rows["text_0"].append(f"a {a} car parked next to a {b} bicycle on the street")
        rows["text_1"].append(f"a {b} car parked next to a {a} bicycle on the street")
    features = datasets.Features({
        "id": datasets.Value("string"), "category": datasets.ClassLabel(names=categories),
        "image_0": datasets.Image(), "text_0": datasets.Value("string"),
        "image_1": datasets.Image(), "text_1": datasets.Value("string"),
    })
    path = folder / "vismin_sized.parquet"
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(path))
    return path


def build_model(folder: Path, name: str, words) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from diffbench.models.tiny import build_word_tokenizer

    vision, text, projection, size = MODELS[name]
    tokenizer = build_word_tokenizer(words, model_max_length=77)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), max_position_embeddings=77, pad_token_id=0, bos_token_id=2,
                         eos_token_id=3, projection_dim=projection, **text),
        vision_config=dict(projection_dim=projection, **vision), projection_dim=projection)
    torch.manual_seed(0)
    path = folder / name
    CLIPModel(config).save_pretrained(path)
    processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                                   resample=3, do_center_crop=True)
    CLIPProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(path)
    return path


def sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def official_loop(model_path, dataset, device, dtype) -> float:
    """Per sample: decode, processor, forward, logits to the host (the official evaluation's pattern)."""
    import torch
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(model_path, dtype=dtype).to(device).eval()
    processor = AutoProcessor.from_pretrained(model_path)
    sync(device)
    started = time.perf_counter()
    with torch.inference_mode():
        for row in dataset:  # the Image feature decodes here, as in the official loader
            inputs = processor(text=[row["text_0"], row["text_1"]], images=[row["image_0"], row["image_1"]],
                               return_tensors="pt", padding=True).to(device)
            inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
            model(**inputs).logits_per_text.float().cpu()
    return time.perf_counter() - started


def harness(model_path, data_file, out, device, batch_size, workers, fast_decode, dtype="auto") -> tuple[float, float]:
    """``diffbench eval vismin`` in this process: (seconds end to end, seconds of it loading the model)."""
    from diffbench import tasks
    from diffbench.harness import models
    from diffbench.harness.options import RunOptions

    load_time = []
    original = models.load

    def timed_load(*args, **kwargs):
        started = time.perf_counter()
        result = original(*args, **kwargs)
        sync(result[0].device)
        load_time.append(time.perf_counter() - started)
        return result

    models.load = timed_load
    try:
        options = RunOptions(task="vismin", model=str(model_path), out=out, device=device, batch_size=batch_size,
                             num_workers=workers, fast_decode=fast_decode, data_files=[data_file],
                             overwrite=True, progress=False, dtype=dtype)
        started = time.perf_counter()
        tasks.run(options)
        total = time.perf_counter() - started
    finally:
        models.load = original
    return total, load_time[0]


def encode_only(model_path, dataset, device, dtype, batch_size) -> tuple[float, float]:
    """(encoders alone over ready device tensors, decode + preprocess in one process) in seconds."""
    import torch
    from transformers import AutoModel, AutoProcessor

    from diffbench.vismin.contrastive import ContrastiveCollate, pair_similarities, text_padding
    from diffbench.harness.data import SampleImages, batches_of, to_device

    model = AutoModel.from_pretrained(model_path, dtype=dtype).to(device).eval()
    processor = AutoProcessor.from_pretrained(model_path)
    samples = SampleImages(dataset, ["image_0", "image_1"], ["text_0", "text_1"])
    collate = ContrastiveCollate(processor, text_padding(model, processor))
    torch.set_num_threads(1)
    started = time.perf_counter()
    batches = [collate([samples[i] for i in batch]) for batch in batches_of(range(len(samples)), batch_size)]
    prep = time.perf_counter() - started
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    ready = [(to_device(b["image_inputs"], device, dtype), to_device(b["text_inputs"], device, dtype)) for b in batches]
    with torch.inference_mode():
        pair_similarities(model, *ready[0])  # warm-up
        sync(device)
        started = time.perf_counter()
        outs = [pair_similarities(model, images, texts) for images, texts in ready]
        torch.cat(outs).cpu()
    return time.perf_counter() - started, prep


def chat_official_loop(model_path, dataset, device, dtype, max_new_tokens) -> tuple[float, list[str]]:
    """One question at a time, one greedy ``generate`` each (the paper's LLaVA / Idefics2 ``predict``)."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from diffbench.harness.chat import render_prompt
    from diffbench.vismin.schema import questions

    model = AutoModelForImageTextToText.from_pretrained(model_path, dtype=dtype).to(device).eval()
    processor = AutoProcessor.from_pretrained(model_path)
    answers = []
    sync(device)
    started = time.perf_counter()
    with torch.inference_mode():
        for row in dataset:
            for question, positions, _ in questions(row["text_0"], row["text_1"]):
                images = [row[f"image_{p}"].convert("RGB") for p in positions]
                inputs = processor(text=[render_prompt(processor, question, len(images))], images=[images],
                                   return_tensors="pt").to(device)
                inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
                out = model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens)
                answers.append(processor.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip())
    sync(device)
    return time.perf_counter() - started, answers


def chat_main(args, dataset, data_file, tmp, device, dtype, workers) -> None:
    import csv

    from diffbench import tasks
    from diffbench.harness.options import RunOptions
    from diffbench.models.tiny import build_tiny_image_text_to_text, words_of
    from diffbench.vismin.schema import ANSWER_COLUMNS

    words = words_of(list(dataset["text_0"]) + list(dataset["text_1"]))
    model_path = build_tiny_image_text_to_text(tmp / "tiny-llava", words=words, image_size=args.chat_image_size)
    sub = dataset.select(range(args.official_n)) if args.official_n else dataset
    official, reference = chat_official_loop(model_path, sub, device, dtype, args.max_new_tokens)
    official *= len(dataset) / len(sub)
    options = RunOptions(task="vismin", model=str(model_path), out=tmp / "out-chat", device=args.device,
                         batch_size=args.chat_batch_size, num_workers=workers, data_files=[data_file],
                         max_new_tokens=args.max_new_tokens, dtype=str(dtype).removeprefix("torch."),
                         overwrite=True, progress=False)
    started = time.perf_counter()
    tasks.run(options)
    ours = time.perf_counter() - started
    with open(tmp / "out-chat" / "vismin_answers.csv", newline="") as handle:
        answers = [row[c] for row in csv.DictReader(handle) for c in ANSWER_COLUMNS][:len(reference)]
    agree = sum(a == b for a, b in zip(answers, reference))
    scaled = f" (scaled from {args.official_n})" if args.official_n else ""
    print(f"| model | questions | paper's loop{scaled} | diffbench eval (incl. load, scoring, reports) | speed-up | "
          "answers agreeing |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| tiny LLaVA ({args.chat_image_size} px) | {4 * len(dataset):,} | {official:.1f} s | {ours:.1f} s | "
          f"{official / ours:.1f}x | {agree} of {len(reference)} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2084, help="samples (2,084 in VisMin)")
    parser.add_argument("--models", default="b32,l14-336", help="comma list of: " + ", ".join(MODELS))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"],
                        help="auto: float32, as the official code and diffbench eval run contrastive models")
    parser.add_argument("--num-workers", type=int, default=None, help="default: every core")
    parser.add_argument("--chat", action="store_true", help="time a chat model (generate + lenient parser) instead")
    parser.add_argument("--chat-batch-size", type=int, default=8, help="--chat: samples a batch (4 questions each)")
    parser.add_argument("--chat-image-size", type=int, default=224, help="--chat: the tiny LLaVA's input size")
    parser.add_argument("--max-new-tokens", type=int, default=16, help="--chat: generated tokens at most")
    parser.add_argument("--official-n", type=int, default=None,
                        help="time the official loop on this many samples and scale to --n (default: all)")
    args = parser.parse_args(argv)

    import datasets
    import torch

    from diffbench.harness import runtime
    from diffbench.models.tiny import words_of

    device = runtime.pick_device(args.device, runtime.Processes())
    dtype = torch.float32 if args.dtype == "auto" else runtime.pick_dtype(args.dtype, device)
    workers = args.num_workers if args.num_workers is not None else runtime.default_workers(runtime.Processes())
    cores = len(os.sched_getaffinity(0))
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "no GPU"
    print(f"# diffbench eval vismin: {args.n:,} samples (two 640x480 JPEGs each), {device} ({gpu}), "
          f"{str(dtype).split('.')[-1]}, {cores} cores, {workers} workers, batch {args.batch_size}")
    with tempfile.TemporaryDirectory(prefix="bench-eval-vismin-") as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        data_file = write_data(tmp, args.n)
        dataset = datasets.load_dataset("parquet", data_files=[str(data_file)], split="train")
        print(f"data written in {time.perf_counter() - started:.1f} s "
              f"({data_file.stat().st_size / args.n / 2 / 1e3:.0f} kB a JPEG)\n")
        if args.chat:
            chat_main(args, dataset, data_file, tmp, device, dtype, workers)
            return 0
        words = words_of(list(dataset["text_0"]) + list(dataset["text_1"]))
        rows = []
        for name in args.models.split(","):
            model_path = build_model(tmp, name, words)
            sub = dataset.select(range(args.official_n)) if args.official_n else dataset
            official = official_loop(model_path, sub, device, dtype) * len(dataset) / len(sub)
            ours, load = harness(model_path, data_file, tmp / f"out-{name}", args.device, args.batch_size, workers, False,
                                 args.dtype)
            fast, _ = harness(model_path, data_file, tmp / f"out-{name}-fast", args.device, args.batch_size, workers, True,
                              args.dtype)
            encode, prep = encode_only(model_path, dataset, device, dtype, args.batch_size)
            rows.append((LABELS[name], official, ours - load, fast - load, encode, prep, load))
            print(f"{LABELS[name]} done", file=sys.stderr)
    scaled = f" (scaled from {args.official_n})" if args.official_n else ""
    print(f"| model | official loop{scaled} | diffbench eval | diffbench eval --fast-decode | encode only | "
          "decode+preprocess, 1 core | eval / encode | model load (excluded) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, official, ours, fast, encode, prep, load in rows:
        print(f"| {label} | {official:.1f} s | {ours:.1f} s | {fast:.1f} s | {encode:.2f} s | {prep:.1f} s | "
              f"{ours / encode:.2f}x | {load:.1f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
