"""A one-node Slurm cluster on this machine, for tests: munged, slurmctld and slurmd started
as child processes with every file (key, sockets, config, state, logs) in a temp folder.

    with slurm_cluster(tmp_dir) as env:    # env = {"SLURM_CONF": ".../slurm.conf"}
        subprocess.run(["sbatch", ...], env={**os.environ, **env})

Needs root (munged runs as user munge, slurmd runs jobs as the submitting user) and the
Debian packages slurmctld, slurmd and slurm-client (munge comes with them). Daemons run in
the foreground (-F / -D) under Popen, so leaving the block stops them, and an atexit hook
stops them if the block is never left. The cluster's own ports are picked free, so it does
not meet a system Slurm on 6817/6818.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

# Where Debian puts the daemons; root's PATH has them, a user's often does not.
SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scontrol", "scancel")
INSTALL_HINT = "apt-get install -y slurmctld slurmd slurm-client"
START_TIMEOUT_S = 30.0
MEMORY_MARGIN_MB = 512
MAX_ARRAY_SIZE = 100_001


class SlurmClusterError(RuntimeError):
    """The cluster did not come up; the message carries the daemons' log tails."""


def _find(name: str) -> str | None:
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(SBIN)
    return shutil.which(name, path=path)


def slurm_binaries_missing() -> str | None:
    """Why a cluster cannot be started here (a binary not found), or None when all are."""
    missing = [name for name in (*DAEMONS, *CLIENTS) if _find(name) is None]
    if not missing:
        return None
    where = f"PATH or {', '.join(SBIN)}"
    return f"Slurm not installed: no {', '.join(missing)} on {where} ({INSTALL_HINT})"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def _real_memory_mb() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                total_mb = int(line.split()[1]) // 1024
                return max(1, total_mb - MEMORY_MARGIN_MB)
    raise SlurmClusterError("no MemTotal in /proc/meminfo")


def _traversable_by(path: Path, uid: int, gid: int) -> bool:
    """Can a process of this uid/gid reach files under `path` (x on every ancestor)?"""
    for folder in [path, *path.parents]:
        st = folder.stat()
        if st.st_uid == uid:
            bit = 0o100
        elif st.st_gid == gid:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            return False
    return True


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"  ({exc})"
    return "\n".join(f"  {line}" for line in text[-lines:]) or "  (empty)"


try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:
    _LIBC = None
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies, so a killed test run does not
    leave daemons behind (best effort; Linux only)."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _write_slurm_conf(
    folder: Path, munge_socket: Path, host: str, ctld_port: int, slurmd_port: int
) -> Path:
    (folder / "state").mkdir()
    (folder / "spool").mkdir()
    conf = folder / "slurm.conf"
    conf.write_text(
        "\n".join(
            [
                "# Written by tests/support/slurm_cluster.py: one node, no accounting.",
                "ClusterName=benchtest",
                f"SlurmctldHost={host}(127.0.0.1)",
                f"SlurmctldPort={ctld_port}",
                f"SlurmdPort={slurmd_port}",
                "SlurmUser=root",
                "SlurmdUser=root",
                "AuthType=auth/munge",
                "CredType=cred/munge",
                f"AuthInfo=socket={munge_socket}",
                f"StateSaveLocation={folder / 'state'}",
                f"SlurmdSpoolDir={folder / 'spool'}",
                f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
                f"SlurmdPidFile={folder / 'slurmd.pid'}",
                f"SlurmctldLogFile={folder / 'slurmctld.log'}",
                f"SlurmdLogFile={folder / 'slurmd.log'}",
                "SlurmctldDebug=info",
                "SlurmdDebug=info",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_CPU",
                "AccountingStorageType=accounting_storage/none",
                "JobAcctGatherType=jobacct_gather/none",
                "JobCompType=jobcomp/none",
                "MpiDefault=none",
                "ReturnToService=2",
                f"MaxArraySize={MAX_ARRAY_SIZE}",
                f"MaxJobCount={10 * MAX_ARRAY_SIZE}",
                "KillWait=5",
                "InactiveLimit=0",
                "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0",
                f"NodeName={host} NodeAddr=127.0.0.1 State=UNKNOWN "
                f"CPUs={os.cpu_count() or 1} RealMemory={_real_memory_mb()}",
                "PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )
    )
    return conf


class _Daemons:
    """The started processes, stopped in reverse order (slurmd, slurmctld, munged)."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], log: Path, **kwargs: object) -> None:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                **kwargs,  # type: ignore[arg-type]
            )
        self.procs.append((name, proc))

    def exited(self) -> list[str]:
        return [
            f"{name} exited with {p.returncode}" for name, p in self.procs if p.poll() is not None
        ]

    def stop(self) -> None:
        while self.procs:
            _, proc = self.procs.pop()
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)


def _start_munged(daemons: _Daemons, munge: pwd.struct_passwd, folder: Path, out: Path) -> Path:
    """munged as user munge, its key/socket/pid/seed/log in `folder` (owned by munge, 711)."""
    folder.mkdir()
    os.chown(folder, munge.pw_uid, munge.pw_gid)
    folder.chmod(0o711)
    key = folder / "munge.key"
    subprocess.run(
        ["dd", "if=/dev/urandom", f"of={key}", "bs=1", "count=1024", "status=none"], check=True
    )
    os.chown(key, munge.pw_uid, munge.pw_gid)
    key.chmod(0o400)
    munge_socket = folder / "munge.socket.2"
    daemons.start(
        "munged",
        [
            _find("munged") or "munged",
            "--foreground",
            f"--socket={munge_socket}",
            f"--key-file={key}",
            f"--pid-file={folder / 'munged.pid'}",
            f"--seed-file={folder / 'munged.seed'}",
            f"--log-file={folder / 'munged.log'}",
        ],
        out,
        user=munge.pw_uid,
        group=munge.pw_gid,
        extra_groups=[],
    )
    return munge_socket


def _wait_for(
    what: str,
    ready: Callable[[], bool],
    daemons: _Daemons,
    logs: list[Path],
    last_seen: Callable[[], str] = lambda: "",
) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if ready():
            return
        if daemons.exited():
            break
        time.sleep(0.25)
    details = "\n".join(f"{log}:\n{_tail(log)}" for log in logs if log.exists())
    exited = "; ".join(daemons.exited()) or "all daemons still running"
    seen = f"; last seen: {last_seen()}" if last_seen() else ""
    raise SlurmClusterError(
        f"Slurm test cluster: {what} not ready within {START_TIMEOUT_S:.0f} s "
        f"({exited}{seen})\n{details}"
    )


@contextmanager
def slurm_cluster(tmp_dir: Path | str) -> Iterator[dict[str, str]]:
    """Start munged, slurmctld and slurmd with state in `tmp_dir`; yield the environment the
    client commands need ({"SLURM_CONF": ...}); stop the daemons on exit. Files stay in
    tmp_dir (config, state, logs) for the caller to read."""
    reason = slurm_binaries_missing()
    if reason:
        raise SlurmClusterError(reason)
    if os.geteuid() != 0:
        raise SlurmClusterError("needs root: munged runs as user munge, slurmd as root")
    try:
        munge = pwd.getpwnam("munge")
    except KeyError as exc:
        raise SlurmClusterError("no user 'munge' (is the munge package installed?)") from exc
    folder = Path(tmp_dir).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    # munged reaches its files as user munge; pytest's temp folders are 0700 root, so then
    # its files go to a private folder under the system temp dir, removed on exit (in the
    # foreground it logs to stderr: munged.out in tmp_dir).
    own_munge_dir = not _traversable_by(folder, munge.pw_uid, munge.pw_gid)
    munge_parent = Path(tempfile.mkdtemp(prefix="bench-munge-")) if own_munge_dir else folder
    if own_munge_dir:
        munge_parent.chmod(0o711)
    munge_dir = munge_parent / "munge"
    host = socket.gethostname()
    daemons = _Daemons()
    atexit.register(daemons.stop)
    logs = [folder / "munged.out"]
    client_env: dict[str, str] | None = None
    try:
        munge_socket = _start_munged(daemons, munge, munge_dir, folder / "munged.out")
        _wait_for("munged", munge_socket.exists, daemons, logs)

        conf = _write_slurm_conf(folder, munge_socket, host, _free_port(), _free_port())
        env = {"SLURM_CONF": str(conf)}
        client_env = {**os.environ, **env}
        for name, argv in (
            ("slurmctld", [_find("slurmctld") or "slurmctld", "-D", "-i", "-f", str(conf)]),
            ("slurmd", [_find("slurmd") or "slurmd", "-D", "-f", str(conf)]),
        ):
            logs += [folder / f"{name}.log", folder / f"{name}.out"]
            daemons.start(name, argv, folder / f"{name}.out", env=client_env)

        sinfo = [_find("sinfo") or "sinfo", "--noheader", "--Node", "--format=%T %E"]
        last = [""]

        def node_idle() -> bool:
            proc = subprocess.run(
                sinfo, env=client_env, capture_output=True, text=True, timeout=10, check=False
            )
            last[0] = f"sinfo: {(proc.stdout + proc.stderr).strip()}"
            return proc.returncode == 0 and proc.stdout.split()[:1] == ["idle"]

        _wait_for("the node (sinfo state idle)", node_idle, daemons, logs, lambda: last[0])
        yield env
    finally:
        if client_env is not None and not daemons.exited():
            _cancel_jobs(client_env)
        daemons.stop()
        atexit.unregister(daemons.stop)
        if own_munge_dir:
            shutil.rmtree(munge_parent, ignore_errors=True)


def _cancel_jobs(client_env: dict[str, str]) -> None:
    """Cancel what this cluster still has queued or running, so no job outlives slurmd."""
    squeue = [_find("squeue") or "squeue", "--noheader", "--format=%i"]
    with suppress(subprocess.SubprocessError, OSError):
        subprocess.run(
            [_find("scancel") or "scancel", "--full", f"--user={os.getuid()}"],
            env=client_env,
            capture_output=True,
            timeout=10,
            check=False,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            proc = subprocess.run(
                squeue, env=client_env, capture_output=True, text=True, timeout=10, check=False
            )
            if proc.returncode != 0 or not proc.stdout.strip():
                return
            time.sleep(0.5)
