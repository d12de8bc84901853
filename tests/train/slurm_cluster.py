"""A real one-node SLURM cluster on localhost for tests: munge, slurmctld and slurmd as root."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from qvltrain.train.distributed import free_port
from tests.conftest import deadline_s

SLURM_CONF = """\
ClusterName=qvltrain-test
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job may start only once its old credential expired (default 120 s); keep it short here.
AuthInfo=cred_expire=10
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobRequeue=1
NodeName={host} CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
"""


def ensure_slurm_installed() -> str | None:
    """None when slurm and munge are usable, else the reason they are not."""
    if shutil.which("slurmctld") and shutil.which("munged"):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "slurm is not installed and this is not a root Debian machine to install it on"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "slurm-wlm", "munge"]):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=deadline_s(600))
        if result.returncode != 0:
            return f"{' '.join(command)} failed: {result.stderr[-500:]}"
    return None if shutil.which("slurmctld") else "slurm-wlm installed no slurmctld"


class LocalSlurm:
    def __init__(self, root: Path):
        self.root = root
        self.host = socket.gethostname().split(".")[0]
        self.conf = root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self._processes: list[subprocess.Popen] = []

    def start(self) -> None:
        for sub in ("state", "spool"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            SLURM_CONF.format(
                host=self.host,
                root=self.root,
                cpus=os.cpu_count(),
                ctld_port=free_port(),
                slurmd_port=free_port(),
            )
        )
        if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
            Path("/run/munge").mkdir(parents=True, exist_ok=True)
            subprocess.run(["munged", "-f"], check=True, capture_output=True)
        for daemon in (
            ["slurmctld", "-D", "-c", "-f", str(self.conf)],
            ["slurmd", "-D", "-f", str(self.conf)],
        ):
            log = open(self.root / f"{daemon[0]}.stdout", "w")  # noqa: SIM115
            self._processes.append(subprocess.Popen(daemon, env=self.env, stdout=log, stderr=log))
            time.sleep(1.0)
        deadline = time.monotonic() + deadline_s(60)
        while time.monotonic() < deadline:
            state = subprocess.run(
                ["sinfo", "-h", "-o", "%T"], env=self.env, capture_output=True, text=True
            ).stdout.strip()
            if state.startswith("idle"):
                return
            time.sleep(0.5)
        raise RuntimeError(f"slurm node never became idle (state {state!r}); see {self.root}/slurmd.log")

    def run(self, command: list[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(
            command, env={**self.env, **kwargs.pop("env", {})}, capture_output=True, text=True, **kwargs
        )

    def stop(self) -> None:
        for process in reversed(self._processes):
            process.terminate()
            try:
                process.wait(timeout=deadline_s(20))
            except subprocess.TimeoutExpired:
                process.kill()
