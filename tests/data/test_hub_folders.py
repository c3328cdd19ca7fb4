"""Loading the Hub folders' modules by file path."""

from __future__ import annotations

import sys
import threading

import pytest

from diffbench.data import hub_folders


def test_concurrent_first_loads_all_get_the_complete_module():
    sys.modules.pop("diffbench_hub_metrics_vismin_group_score", None)
    barrier = threading.Barrier(8)
    seen = []

    def load():
        barrier.wait()
        module = hub_folders.load_module("metrics", "vismin_group_score")
        seen.append(hasattr(module, "_KWARGS_DESCRIPTION") and any(isinstance(v, type) for v in vars(module).values()))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [True] * 8


def test_unknown_folder_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown dataset 'nope'; known: .*vismin"):
        hub_folders.hub_folder("datasets", "nope")
