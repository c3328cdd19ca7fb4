"""The prediction loop shared by every task: batches from the DataLoader through a model step, saved
batch by batch, split over ``accelerate`` processes by batch, gathered on the main process."""

from __future__ import annotations

import sys

from diffbench.harness.data import BadSample, batches_of, make_loader


def progress(iterable, total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="batch", disable=not enabled, file=sys.stderr,
                dynamic_ncols=True)


def predict(samples, todo: list[int], batch_size: int, collate, step, store, procs, num_workers: int,
            pin_memory: bool, desc: str, show_progress: bool = True):
    """Run ``step`` over the rows ``todo`` of ``samples``; returns ``(records, bad)`` gathered from every
    process (records in row order; ``bad``: :class:`~diffbench.harness.data.BadSample` list).

    Each process takes every ``procs.count``-th batch of the single-process batching; its records are
    appended to ``store`` as each batch finishes.
    """
    batches = batches_of(todo, batch_size)[procs.index::procs.count]
    mine, bad = [], []
    if batches:
        loader = make_loader(samples, batches, collate, num_workers, pin_memory)
        for batch in progress(loader, len(batches), desc, show_progress and procs.is_main):
            bad.extend(batch["bad"])
            rows = step(batch)
            store.append([record for _, record in rows])
            mine.extend(rows)
    store.close()
    gathered = procs.gather([(index, record) for index, record in mine])
    gathered_bad = procs.gather([(b.id, b.column, b.reason) for b in bad])
    return [record for _, record in sorted(gathered, key=lambda pair: pair[0])], [BadSample(*b) for b in gathered_bad]
