"""Small shared helpers: seeding, atomic writes, provenance (git SHA, machine), logging.

Torch-free at import (the results store imports it): the helpers that need torch import it
when called."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import logging
import os
import platform
import random
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "atomic_path",
    "atomic_write_json",
    "atomic_write_text",
    "git_sha",
    "machine_description",
    "native_bf16",
    "seed_everything",
    "setup_logging",
    "tune_malloc",
]

log = logging.getLogger("pretroost")


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """The one seeding function: Python, NumPy and torch (all devices).

    ``deterministic=True`` also asks torch for deterministic kernels (bit-identical reruns on CPU).
    """
    import torch  # torch-free at import: see the module docstring

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Readers never see half a file: either the old content or the complete new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


@functools.cache
def git_sha(short: bool = False) -> str:
    """The git commit of the source checkout (``"unknown"`` outside git); ``+dirty`` if the
    package (this folder) has uncommitted changes.

    Kept from the first call on, so that a long run records the revision it started from, not one
    checked out while it ran (the CLI calls it before running a command)."""
    root = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short" if short else "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "."],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def machine_description() -> str:
    """e.g. ``"x86_64 Intel(R) Xeon(R) Processor (family 6 model 207) | 2 cores | cpu | torch
    2.13.0 (1 threads)"``. Family and model tell apart CPUs sold under one name, whose results
    need not agree bit for bit."""
    cpu = platform.processor() or platform.machine()
    info: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if not line.strip():
                break  # the first processor's block is enough
            info.setdefault(key.strip(), value.strip())
    if "model name" in info:
        cpu = info["model name"]
        if "cpu family" in info and "model" in info:
            cpu += f" (family {info['cpu family']} model {info['model']})"
    import torch  # torch-free at import: see the module docstring

    dev = "cpu"
    if torch.cuda.is_available():
        dev = torch.cuda.get_device_name(0)
    return (
        f"{platform.machine()} {cpu} | {os.cpu_count()} cores | {dev} | "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )


_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 (Linux /proc/cpuinfo "flags")
_BF16_FEATURES = ("bf16",)  # aarch64 (Linux /proc/cpuinfo "Features")


def cpu_flags() -> set[str]:
    """The CPU feature flags Linux lists in ``/proc/cpuinfo`` (empty where unreadable)."""
    flags: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                flags.update(value.split())
    return flags


def native_bf16(device: str | torch.device = "cpu") -> tuple[bool, str]:
    """Whether bfloat16 runs natively on ``device``, and the evidence, as ``(native, reason)``.

    CUDA devices: yes. CPUs: yes when the CPU lists ``avx512_bf16`` or ``amx_bf16`` (x86) or
    ``bf16`` (aarch64) among its flags; otherwise torch emulates bf16 arithmetic and autocast runs
    many times slower than fp32. ``torch.backends.cpu.get_cpu_capability()`` (the vector ISA torch
    dispatches to, e.g. ``AVX512``) is quoted in the reason: AVX-512 alone does not imply BF16.
    """
    import torch  # torch-free at import: see the module docstring

    dev = torch.device(device)
    if dev.type != "cpu":
        return True, f"{dev.type} device"
    capability = torch.backends.cpu.get_cpu_capability()
    flags = cpu_flags()
    found = sorted(f for f in (*_BF16_FLAGS, *_BF16_FEATURES) if f in flags)
    if found:
        return True, f"CPU flags {', '.join(found)} (torch CPU capability {capability})"
    what = (
        "no CPU flags readable"
        if not flags
        else "none of avx512_bf16/amx_bf16/bf16 in the CPU flags"
    )
    return False, f"no native BF16 on this CPU ({what}; torch CPU capability {capability})"


#: set to ``0`` to keep glibc's malloc settings (:func:`tune_malloc` then does nothing)
TUNE_MALLOC_ENV = "PRETROOST_TUNE_MALLOC"


def tune_malloc(mmap_threshold: int = 32 << 20, trim_threshold: int = 1 << 31) -> bool:
    """Keep freed memory in the process heap (glibc ``mallopt``): blocks up to ``mmap_threshold``
    come from the heap, and the heap is only trimmed past ``trim_threshold`` of free memory.

    torch's CPU allocator has no cache; with glibc's defaults the MB-sized activations and
    gradients of every training step are returned to the OS and page-faulted back in the next
    step, which on virtual machines costs a few per cent of a finetune's CPU time
    (``pretroost speed --only finetune_epoch``). No effect on any computed value. Process-wide;
    returns False where unsupported (not glibc) or disabled (``PRETROOST_TUNE_MALLOC=0``).
    """
    if os.environ.get(TUNE_MALLOC_ENV, "1").strip().lower() in {"0", "false", "no"}:
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)  # the process's own C library
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, int(mmap_threshold)) == 1
        return ok and libc.mallopt(m_trim_threshold, int(trim_threshold)) == 1
    except (OSError, AttributeError):  # no mallopt: not glibc
        return False


def setup_logging(verbosity: int = 0, stream: IO[str] | None = None) -> None:
    """Configure the ``pretroost`` logger: INFO by default, DEBUG with ``-v``, WARNING with ``-q``."""
    level = logging.INFO - 10 * verbosity
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger("pretroost")
    root.handlers[:] = [handler]
    root.setLevel(max(logging.DEBUG, min(logging.ERROR, level)))
    root.propagate = False
