"""Process-group set-up that works under the DeepSpeed launcher, SLURM, torchrun or plain python."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import warnings

import torch


def compiled_ops_in_environment() -> str | None:
    """Keep DeepSpeed's JIT-compiled ops (CPU Adam, the CPU shared-memory allreduce) in this Python
    environment, `<sys.prefix>/torch_extensions`, unless TORCH_EXTENSIONS_DIR says otherwise.

    torch's default, `~/.cache/torch_extensions`, is one folder per user: two checkouts (two venvs)
    on one machine then rebuild the same op against each other's include paths on every start, and
    every rank of both waits on the build lock (minutes per run on a loaded machine). Returns the
    folder used (None: the user's setting, or a read-only environment keeps torch's default).
    """
    if "TORCH_EXTENSIONS_DIR" in os.environ or not os.access(sys.prefix, os.W_OK):
        return None
    folder = os.path.join(sys.prefix, "torch_extensions")
    os.environ["TORCH_EXTENSIONS_DIR"] = folder
    return folder


def environment_build_tools_first() -> str | None:
    """Put this Python environment's `bin/` first on PATH when it holds its own `ninja`.

    torch compiles DeepSpeed's ops by running whichever `ninja` PATH finds first. A machine with a
    system ninja (Debian's 1.11) beside the environment's (the pip wheel, 1.13) then builds with
    one or the other depending on how a process was started: the two disagree on `.ninja_log`'s
    command hashes, so each rebuilds what the other built, every rank waits on the build lock, and a
    rank killed mid-build leaves that lock behind. Returns the folder put first (None: unchanged).
    """
    folder = os.path.dirname(sys.executable)
    if not os.access(os.path.join(folder, "ninja"), os.X_OK):
        return None
    path = os.environ.get("PATH", "").split(os.pathsep)
    if path and path[0] == folder:
        return None
    os.environ["PATH"] = os.pathsep.join([folder] + [entry for entry in path if entry and entry != folder])
    return folder


STALE_BUILD_LOCK_S = 900.0
"""A build lock older than this was left by a killed build: compiling one op takes about a minute."""


def remove_stale_build_locks(max_age_s: float = STALE_BUILD_LOCK_S) -> list[str]:
    """Remove build locks in TORCH_EXTENSIONS_DIR that a killed build left behind.

    torch takes `<op>/lock` for a build and removes it when done; a process killed mid-build (a
    deadline, Ctrl-C, an OOM kill) leaves it, and every later start waits on it forever. Locks older
    than `max_age_s` are removed with a warning. Returns the removed paths.
    """
    folder = os.environ.get("TORCH_EXTENSIONS_DIR")
    if not folder or not os.path.isdir(folder):
        return []
    removed = []
    for name in sorted(os.listdir(folder)):
        lock = os.path.join(folder, name, "lock")
        try:
            age_s = time.time() - os.path.getmtime(lock)
            if age_s <= max_age_s:
                continue
            os.remove(lock)
        except OSError:  # no lock, or another process removed it first
            continue
        warnings.warn(f"removed {lock}: a build lock {age_s:.0f} s old, left by a killed build", stacklevel=2)
        removed.append(lock)
    return removed


def build_cpu_ops() -> list[str]:
    """Compile DeepSpeed's CPU ops (the shared-memory allreduce, CPU Adam) now, in this process.

    Ranks otherwise compile them on first use, all waiting on one build lock: minutes on a loaded
    machine, and a rank killed mid-build (a test's deadline, Ctrl-C) leaves the lock behind, after
    which every later run waits on it forever. The test session calls this once, before any
    deadline runs. Returns the names of the ops this DeepSpeed can build here (no-op on CUDA).
    """
    if not use_cpu_accelerator():
        return []
    import deepspeed
    from deepspeed.accelerator import get_accelerator

    built = []
    for builder_name in ("ShareMemCommBuilder", "CPUAdamBuilder"):
        builder = get_accelerator().create_op_builder(builder_name)
        if builder is not None and deepspeed.ops.__compatible_ops__.get(builder.NAME, False):
            builder.load(verbose=False)
            built.append(builder.NAME)
    return built


def use_cpu_accelerator() -> bool:
    """No CUDA device: DeepSpeed's CPU accelerator and gloo. Must run before deepspeed is imported
    (it also places DeepSpeed's compiled ops, picks their build tool and clears a killed build's lock:
    `compiled_ops_in_environment`, `environment_build_tools_first`, `remove_stale_build_locks`)."""
    compiled_ops_in_environment()
    environment_build_tools_first()
    remove_stale_build_locks()
    if torch.cuda.is_available():
        return False
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    return True


def free_port() -> int:
    """A TCP port free on this host right now (for MASTER_PORT and local test services)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def init_distributed() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) after joining the process group.

    A process started without a launcher becomes a world of one, so `python launch/train.py`
    runs the same code path as `deepspeed launch/train.py`.
    """
    if "RANK" not in os.environ:
        os.environ.update(
            RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port())
        )
    cpu = use_cpu_accelerator()
    # DeepSpeed calls the c10d collectives torch renamed; the warning repeats every step.
    warnings.filterwarnings("ignore", category=FutureWarning, module="torch.distributed")
    import deepspeed

    deepspeed.init_distributed(dist_backend="gloo" if cpu else "nccl", verbose=False)
    rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
    if cpu:
        release_shm_buffer(rank)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not cpu:
        torch.cuda.set_device(local_rank)
    return rank, world_size, local_rank


SHM_DIR = "/dev/shm"
SHM_PREFIX = "deepspeed_allreduce_buffer"
"""DeepSpeed's CPU shared-memory allreduce maps one ~69 MB file per rank, named
`<SHM_PREFIX>_<uid>_<MASTER_ADDR>_<MASTER_PORT>_<rank>`, and never unlinks it."""


def shm_buffer_path(rank: int) -> str:
    """The /dev/shm file DeepSpeed's CPU allreduce creates for `rank` of this run."""
    name = (
        f"{SHM_PREFIX}_{os.getuid()}_{os.environ.get('MASTER_ADDR', '')}_{os.environ.get('MASTER_PORT', '')}"
    )
    return os.path.join(SHM_DIR, f"{name}_{rank}")


def release_shm_buffer(rank: int) -> bool:
    """Unlink this rank's shared-memory allreduce file once every rank has mapped it.

    /dev/shm is RAM: left behind, every two-rank CPU run (each test, each demo stage, a killed run
    too) keeps ~140 MB until reboot, and a machine that runs the suite a few times fills its memory.
    DeepSpeed maps all ranks' files while joining the group; after a barrier the names are no longer
    needed (the mappings stay valid until the processes exit), so each rank removes its own now,
    which also covers runs that are later killed. True when a file was removed.
    """
    torch.distributed.barrier()  # on every rank, whether or not its file exists: never one-sided
    path = shm_buffer_path(rank)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False  # the shm op is not in use (one rank, ranks on several hosts, op not built)
    return True


def publish_rank(run_dir: str, rank: int, local_rank: int, world_size: int) -> str:
    """Write RUN/ranks/rank_N.json (pid, host, local rank) and return its path.

    Tools find a rank's process here (py-spy, a debugger, a test that kills one rank) instead of
    matching command lines, which depend on the terminal's width and the checkout's path. The file
    is replaced atomically, so a reader never sees half of it; a resumed run rewrites it.
    """
    folder = os.path.join(run_dir, "ranks")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"rank_{rank}.json")
    record = {
        "rank": rank,
        "local_rank": local_rank,
        "world_size": world_size,
        "pid": os.getpid(),
        "host": socket.gethostname(),
    }
    partial = f"{path}.{os.getpid()}.tmp"
    with open(partial, "w") as file:
        json.dump(record, file)
    os.replace(partial, path)
    return path


def shutdown_distributed() -> None:
    """Leave the process group before the interpreter exits.

    Without it, gloo's worker threads outlive Python's finalisation and the process may abort
    with "terminate called without an active exception" (SIGABRT) after a successful run: seen
    as a rare exit code -6 on a rank whose training had finished. Safe to call more than once.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum a few scalars across ranks in one collective (float64 so token counts stay exact)."""
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
        torch.distributed.all_reduce(tensor)
    return tensor.tolist()


def barrier() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
