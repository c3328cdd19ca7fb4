"""Where and how the model runs: device, dtype, ``accelerate`` processes, out-of-memory back-off.

Multi-process runs (``accelerate launch --num_processes N -m diffbench eval ...``) split the work by
*batch*: process ``p`` takes batches ``p, p + N, p + 2N, ...`` of exactly the batches a single process
would run, so every sample is computed in the same company as in a single-process run, and the
gathered predictions are identical to it (bit for bit on the same hardware and kernels).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass


@dataclass
class Processes:
    """This process's place among the ``accelerate`` processes (one process: index 0 of 1)."""

    index: int = 0
    count: int = 1
    local_index: int = 0
    local_count: int = 1
    state: object = None  # accelerate.PartialState when launched by accelerate

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def gather(self, items: list) -> list:
        """Every process's ``items``, concatenated in process order (on every process)."""
        if self.count == 1:
            return list(items)
        from accelerate.utils import gather_object

        return gather_object(list(items))

    def barrier(self) -> None:
        if self.count > 1:
            self.state.wait_for_everyone()

    def close(self) -> None:
        """Leave the process group while the interpreter is whole. A gloo group left to interpreter
        shutdown can abort the process (SIGABRT, "terminate called without an active exception";
        pytorch/pytorch#190489). Local to this process: no barrier, so a process that failed cannot
        leave the others waiting."""
        if self.count > 1:
            self.state.destroy_process_group()


def processes(device: str = "auto") -> Processes:
    """The process group when started by ``accelerate launch`` (or ``torchrun``), else one process.

    Without CUDA (or with ``device="cpu"``) the processes talk over gloo on the CPU.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Processes()
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=device == "cpu" or not torch.cuda.is_available())
    local_count = int(os.environ.get("LOCAL_WORLD_SIZE", state.num_processes))
    return Processes(state.process_index, state.num_processes, state.local_process_index, local_count, state)


def pick_device(requested: str, procs: Processes):
    """``auto``: this process's accelerator (CUDA, then MPS) or the CPU."""
    import torch

    if procs.state is not None and requested == "auto":
        return procs.state.device
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", procs.local_index % torch.cuda.device_count())
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(requested)


def pick_dtype(requested: str, device):
    """``auto``: bfloat16 on a CUDA device that supports it, else float16 on CUDA; float32 elsewhere."""
    import torch

    if requested != "auto":
        return dtype_by_name(requested)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


#: where a setting of run.json's ``settings`` came from
FROM_OPTION, FROM_PRESET, FROM_CONFIG, FROM_PROCESSOR, FROM_DEFAULT = (
    "option", "preset", "model config", "processor", "default")
FROM_CONFIG_FILE = "config file"  # diffbench eval --config FILE.yaml


def dtype_by_name(name: str):
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def config_dtype(named: str | None, device) -> tuple[str, str, str | None]:
    """``(dtype, source, why)``: what a model whose config names ``named`` runs in, asked ``auto``.

    The config's dtype as it says, except: none named: float32 (what transformers loads then); a half
    precision on the CPU: float32 (bfloat16 matrix products there are several times slower than float32
    without AVX512-BF16/AMX, and float16 ones slower still or unsupported); bfloat16 on a CUDA device
    without it: float16. ``why`` says which, for run.json (None when the config's dtype stands).
    """
    if named is None:
        return "float32", FROM_DEFAULT, "the model config names no dtype: float32, as transformers loads it"
    if device.type == "cpu" and named != "float32":
        return "float32", FROM_DEFAULT, (f"the model config says {named}; on the CPU float32 (half precision "
                                         "there is slow or unsupported)")
    if device.type == "cuda" and named == "bfloat16":
        import torch

        if not torch.cuda.is_bf16_supported():
            return "float16", FROM_DEFAULT, "the model config says bfloat16, which this GPU lacks: float16"
    return named, FROM_CONFIG, None


def default_workers(procs: Processes) -> int:
    """Decoding workers per process: this machine's cores shared by its processes (the main one included)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, procs.local_count))


def is_out_of_memory(err: BaseException) -> bool:
    import torch

    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


class ChunkedRunner:
    """Runs a batch as chunks of at most ``size`` samples; out of device memory, the size halves and the
    chunk is retried, and later batches keep the smaller size.

    ``run(fn, n)`` calls ``fn(start, stop)`` over ``range(n)`` and returns the list of results.
    """

    def __init__(self, size: int, log=None):
        self.size = max(1, int(size))
        self.log = log or (lambda message: print(message, file=sys.stderr))

    def run(self, fn, n: int) -> list:
        results, start = [], 0
        while start < n:
            stop = min(n, start + self.size)
            try:
                results.append(fn(start, stop))
            except Exception as err:  # noqa: BLE001 - re-raised unless it is an out-of-memory error
                if not is_out_of_memory(err) or self.size == 1:
                    raise
                self._free()
                self.size = max(1, self.size // 2)
                self.log(f"out of memory: batch size halved to {self.size}, continuing")
                continue
            start = stop
        return results

    @staticmethod
    def _free() -> None:
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
