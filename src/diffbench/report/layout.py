"""The one results.json layout of every scoring, version 1: what ``diffbench score``, ``diffbench eval`` and the
Space write, what the tables, the figures, the Space and ``diffbench compare`` read.

Top level, in this order (:data:`REQUIRED` must be there):

- ``schema``: :data:`SCHEMA`; a reader refuses another (:func:`check`);
- ``benchmark``: the dataset scored (``vismin``, ``spot_the_diff``, ...); ``config``, ``split``;
- ``scale``: :data:`SCALE`: every score and interval is a percentage, 0..100 (the caption metrics x 100, as
  papers print them; CIDEr-D can pass 100);
- ``samples``: how many samples were scored; ``dataset_samples``: how many the split holds;
- ``scores``: ``{metric: value}`` over every sample scored, flat;
- ``ci95``: ``{metric: [low, high]}``, the 95% percentile bootstrap interval over samples (``uncertainty``
  says how it was drawn: the method, the resamples, the seed, the strata);
- ``groups``: ``{group: {"samples": n, "scores": {...}, "ci95": {...}}}``: VisMin's categories, a caption
  set's change types or CLEVR-Change's official parts;
- ``provenance``: where the data came from (:mod:`diffbench.data.provenance`);
- ``protocol``: how the result was made (the rule and the parser of a scoring; a run adds its model's protocol);

then what each front end adds (``submission``, ``model``, ``weights``, ...). The per-sample records are in
``samples.jsonl`` beside it (:func:`samples_jsonl`).

    >>> results = make_results(benchmark="vismin", config="bench", split="test", samples=2, dataset_samples=2,
    ...                        scores={"group": 50.0}, ci95={"group": [0.0, 100.0]}, groups={},
    ...                        uncertainty={}, provenance={}, protocol={})
    >>> list(results)[:4], check(results)["scale"]
    (['schema', 'benchmark', 'config', 'split'], 'percent')
"""

from __future__ import annotations

import json

SCHEMA = "diffbench.results/1"
#: the intervals' bootstrap unless told otherwise (``--resamples``, ``--seed``): 1,000 resamples keep a 95%
#: interval's ends stable to about a tenth of a point on VisMin's categories; the seed makes them reproducible
DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0
SCALE = "percent"
REQUIRED = ("schema", "benchmark", "samples", "scores", "ci95", "groups", "provenance", "protocol")
RESULTS_FILE = "results.json"
SAMPLES_FILE = "samples.jsonl"


def group(samples: int, scores: dict, ci95: dict) -> dict:
    """One entry of ``groups``."""
    return {"samples": int(samples), "scores": scores, "ci95": ci95}


def make_results(*, benchmark: str, config, split: str, samples: int, dataset_samples: int, scores: dict,
                 ci95: dict, groups: dict, uncertainty: dict, provenance: dict, protocol: dict, **extra) -> dict:
    """A results dict in the layout's order; ``extra`` keys (the front end's) come last."""
    return {"schema": SCHEMA, "benchmark": benchmark, "config": config, "split": split, "scale": SCALE,
            "samples": int(samples), "dataset_samples": int(dataset_samples), "scores": scores, "ci95": ci95,
            "groups": groups, "uncertainty": uncertainty, "provenance": provenance, "protocol": protocol, **extra}


def check(results, source: str = "results") -> dict:
    """``results`` if it is this layout; a ValueError naming ``source`` and what is wrong otherwise."""
    if not isinstance(results, dict):
        raise ValueError(f"{source}: not a results object (a JSON object with {', '.join(REQUIRED)})")
    if results.get("schema") != SCHEMA:
        found = results.get("schema")
        raise ValueError(f"{source}: results of schema {found!r}, not {SCHEMA!r}"
                         + (" (written before results were versioned: score it again)" if found is None else ""))
    missing = [key for key in REQUIRED if key not in results]
    if missing:
        raise ValueError(f"{source}: results lack {', '.join(missing)}")
    return results


def dumps(results: dict) -> str:
    """results.json's text: indented, non-ASCII kept as it is, one trailing newline."""
    return json.dumps(results, indent=2, ensure_ascii=False) + "\n"


def samples_jsonl(records) -> str:
    """samples.jsonl's text: one JSON object a sample."""
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
