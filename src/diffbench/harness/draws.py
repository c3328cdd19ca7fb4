"""``--limit``: which rows a limited run takes. A stratified, seeded, nested draw.

The rows are grouped into strata by the task's ``strata_column`` (VisMin: ``category``; captions:
``change_types``); each stratum's rows are ranked by ``sha256("<seed>:<id>")``; strata take turns by
the Huntington-Hill rule (the next row goes to the stratum with the largest ``n / sqrt(k (k + 1))``,
``n`` its rows, ``k`` those it has had; strata of equal priority in a seeded order of their names):
every stratum gets one row before any gets two, the largest first, then the shares follow the strata's
sizes. The draw of ``N`` rows is the first ``N`` of that one sequence:

- **deterministic**: the same ids give the same draw on any machine (a hash, exact rational
  priorities; no random generator, no float rounding, no row order);
- **nested**: the rows of ``--limit 20`` are among those of ``--limit 40`` (a divisor method never takes
  a row back as the count grows; the largest-remainder method would: the Alabama paradox), which is
  what lets a rerun with a larger limit keep what was predicted and extend it;
- **covering**: every stratum is present once ``N`` is at least the number of strata.

A list value (a pair's change types) counts under its sorted types joined by ``+``: a pair is drawn once,
so it belongs to one stratum, the same whatever order its types are listed in; a pair with several
types is not counted towards one of them arbitrarily.

    >>> keys = ["object"] * 6 + ["counting"] * 2
    >>> ids = [f"{k}/{i}" for i, k in enumerate(keys)]
    >>> sorted(keys[i] for i in draw_order(keys, ids, count=4))  # 6:2 of 4 rows
    ['counting', 'object', 'object', 'object']
    >>> sorted(keys[i] for i in draw_order(keys, ids, count=2))  # one a stratum first
    ['counting', 'object']
    >>> set(draw_order(keys, ids, count=3)) <= set(draw_order(keys, ids, count=5))
    True
    >>> sample_count(0.25, 40), sample_count(20, 8)
    (10, 8)
"""

from __future__ import annotations

import hashlib
import heapq
import math
from fractions import Fraction

#: the draw's seed: fixed, so that a run's rows never depend on where or when it ran
DRAW_SEED = 0
METHOD = ("stratified: Huntington-Hill allocation over the strata (ties in sha256(seed:stratum) order), each "
          "stratum in sha256(seed:id) order")
NO_STRATUM = ""  # rows whose stratum value is missing or empty


def sample_count(limit: int | float | None, total: int) -> int:
    """How many of ``total`` rows ``limit`` takes: ``N`` (at most ``total``), or a fraction of them (rounded
    half up, at least one); ``None``: all."""
    if limit is None:
        return total
    if isinstance(limit, float):
        return min(total, max(1, math.floor(limit * total + 0.5)))
    return min(limit, total)


def stratum_key(value) -> str:
    """A row's stratum: its value as text; a list's sorted values joined by ``+``.

    >>> stratum_key(["move", "add"]), stratum_key("object"), stratum_key(None), stratum_key([])
    ('add+move', 'object', '', '')
    """
    if value is None:
        return NO_STRATUM
    if isinstance(value, (list, tuple)):
        return "+".join(sorted(str(v) for v in value))
    return str(value)


def stratum_keys(dataset, column: str | None) -> list[str]:
    """Every row's stratum (class labels by their names); one stratum for all when there is no ``column``."""
    if not column or column not in dataset.column_names:
        return [NO_STRATUM] * len(dataset)
    values = list(dataset[column])
    feature = dataset.features[column]
    if hasattr(feature, "int2str"):  # a ClassLabel: the names, whatever the label order
        values = feature.int2str(values)
    return [stratum_key(v) for v in values]


def rank(name, seed: int = DRAW_SEED) -> bytes:
    """A row's place in its stratum (``name``: its id), or a stratum's among strata of its size: a hash, so
    that neither row order nor other rows move it."""
    return hashlib.sha256(f"{seed}:{name}".encode("utf-8")).digest()


def draw_order(keys: list[str], ids: list, seed: int = DRAW_SEED, count: int | None = None) -> list[int]:
    """The first ``count`` (default: all) row positions of the draw sequence (see the module docstring)."""
    strata: dict[str, list[int]] = {}
    for row, key in enumerate(keys):
        strata.setdefault(key, []).append(row)
    for rows in strata.values():
        rows.sort(key=lambda row: (rank(ids[row], seed), row))
    # (0, -n): a stratum's first row, the largest first; then (1, -n^2 / (k (k + 1))), exact; ties in a seeded
    # order of the strata's names (not the alphabet: many strata of one pair would go by their names)
    tie = {key: rank(key, seed) for key in strata}
    heap = [(0, Fraction(-len(rows)), tie[key], key) for key, rows in strata.items()]
    heapq.heapify(heap)
    taken = dict.fromkeys(strata, 0)
    order, count = [], len(keys) if count is None else min(count, len(keys))
    while len(order) < count:
        *_, key = heapq.heappop(heap)
        rows, k = strata[key], taken[key]
        order.append(rows[k])
        taken[key] = k = k + 1
        if k < len(rows):
            heapq.heappush(heap, (1, -Fraction(len(rows) ** 2, k * (k + 1)), tie[key], key))
    return order


def draw(dataset, limit, column: str | None, seed: int = DRAW_SEED):
    """The rows ``limit`` takes of ``dataset``, in the dataset's order (all of them when ``limit`` is
    ``None`` or covers them all)."""
    count = sample_count(limit, len(dataset))
    if count >= len(dataset):
        return dataset
    ids = list(dataset.select_columns(["id"])["id"])
    return dataset.select(sorted(draw_order(stratum_keys(dataset, column), ids, seed, count)))


def record(column: str | None, seed: int = DRAW_SEED) -> dict:
    """How a limited run's rows were drawn (run.json's ``sample_draw``: a resumed run must draw the same way)."""
    return {"method": METHOD, "strata": column, "seed": seed}


def in_results(run: dict) -> dict:
    """``{"sample_draw": "..."}`` for results.json's ``protocol`` when --limit drew part of the split (how many
    of how many, and by what; run.json has the method and seed), from run.json; ``{}`` for the whole split.

    >>> in_results({"limit": 0.5, "samples": 20, "split_samples": 40, "sample_draw": record("category")})
    {'sample_draw': '20 of 40 samples (--limit 0.5), stratified by category'}
    """
    drawn = run.get("sample_draw")
    if not drawn:
        return {}
    how = f"stratified by {drawn['strata']}" if drawn.get("strata") else "one stratum"
    return {"sample_draw": f"{run['samples']} of {run['split_samples']} samples (--limit {run['limit']}), {how}"}
