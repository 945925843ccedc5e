"""Keeping one student's kernel away from the others, the teacher and the grader.

Two layers, the second only where Linux lets an unprivileged user have it:

- always: the grading worker (one process per student) is a *child subreaper*
  (`prctl(PR_SET_CHILD_SUBREAPER)`), so every process the kernel starts — also one that left the
  kernel's session with `setsid` — stays its descendant, and `kill_descendants` ends them all after
  each notebook; the kernel runs under an address-space limit (`--memory-limit`, RLIMIT_AS, set by
  `launch.py` before the kernel starts);
- namespaces (`unshare --user --map-root-user --mount --net --pid`): the worker is PID 1 of a PID
  namespace of its own (when it ends, the kernel ends) and has no network. Before the kernel starts
  it remounts every filesystem read-only, mounts empty tmpfs over the submissions folder, the
  teacher's notebooks and the output folders, and fresh tmpfs over /tmp, /var/tmp and /dev/shm (where
  the student's private copy is then written). The kernel itself starts in one more user + mount
  namespace, which locks those mounts: it cannot unmount them or make them writable again.

`probe()` finds out once whether the namespaces work here; where they do not (a container without
user namespaces, macOS, ...) grading still runs with the first layer, and says so.
"""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
NS_FLAGS = ["--user", "--map-root-user", "--mount", "--net", "--pid", "--fork", "--kill-child", "--mount-proc"]
KERNEL_NS_FLAGS = ["--user", "--map-root-user", "--mount"]


def worker_command(namespaces: bool) -> list[str]:
    """How the grader starts one student's worker (its command line names no path: a kernel sees it)."""
    base = [sys.executable, "-m", "cnclip_edu.course.grading.worker"]
    return [shutil.which("unshare") or "unshare", *NS_FLAGS, "--", *base] if namespaces else base


def kernel_prefix(namespaces: bool) -> list[str]:
    return [shutil.which("unshare") or "unshare", *KERNEL_NS_FLAGS, "--"] if namespaces else []


_SELF_TEST = r"""
import os, subprocess, sys
d = "/tmp"  # inside the new mount namespace: the tmpfs over it is private and gone with the probe
subprocess.run(["mount", "-t", "tmpfs", "none", d], check=True)
subprocess.run(["mount", "--bind", sys.prefix, sys.prefix], check=True)
subprocess.run(["mount", "-o", "remount,bind,ro", sys.prefix], check=True)
subprocess.run(%r + ["true"], check=True)
assert os.getpid() == 1
print("ok")
"""


_PROBED: tuple[bool, str] | None = None


def probe() -> tuple[bool, str]:
    """(namespaces usable, a sentence for the report)."""
    global _PROBED
    if _PROBED is not None:
        return _PROBED
    if sys.platform != "linux" or shutil.which("unshare") is None or shutil.which("mount") is None:
        _PROBED = (False, "没有 Linux 的 unshare/mount：学生之间只靠子进程收割和内存上限隔开 (no namespaces here)")
        return _PROBED
    cmd = [shutil.which("unshare"), *NS_FLAGS, "--", sys.executable, "-c", _SELF_TEST % (kernel_prefix(True),)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        ok = res.returncode == 0 and res.stdout.strip().endswith("ok")
        why = "" if ok else (res.stderr.strip().splitlines() or ["?"])[-1]
    except (OSError, subprocess.TimeoutExpired) as exc:
        ok, why = False, str(exc)
    _PROBED = (True, "每个 kernel 在自己的 user+mount+net+pid 命名空间里 (namespaces)") if ok else (
        False, f"这台机器不能用非特权命名空间 ({why[:120]})：学生之间只靠子进程收割和内存上限隔开 (fallback)")
    return _PROBED


# ----------------------------------------------------------------------------- inside the worker
def _mount(*args: str) -> str:
    """'' or why the mount failed."""
    res = subprocess.run(["mount", *args], capture_output=True, text=True)
    return "" if res.returncode == 0 else f"mount {' '.join(args)}: {res.stderr.strip()[:200]}"


def loopback_up() -> str:
    """The new network namespace has `lo` down; the kernel talks to the worker over 127.0.0.1."""
    import fcntl
    import socket
    import struct

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            req = struct.pack("16sh", b"lo", 0)
            flags = struct.unpack("16sh", fcntl.ioctl(s, 0x8913, req))[1]      # SIOCGIFFLAGS
            fcntl.ioctl(s, 0x8914, struct.pack("16sh", b"lo", flags | 0x1))     # SIOCSIFFLAGS, IFF_UP
        return ""
    except OSError as exc:
        return f"lo: {exc}"


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def essential_paths() -> list[Path]:
    """What the kernel needs to see (read-only): Python, its packages, the course package."""
    import cnclip_edu

    import site

    found = [Path(sys.prefix), Path(sys.base_prefix), Path(cnclip_edu.__file__).resolve().parents[1]]
    # what a kernel's sys.path is made of: site-packages (with editable installs' .pth paths) and PYTHONPATH
    paths = [*site.getsitepackages(), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    for sp in site.getsitepackages():
        for pth in Path(sp).glob("*.pth"):
            try:
                paths += [line.strip() for line in pth.read_text().splitlines() if line.strip().startswith("/")]
            except OSError:
                pass
    found += [Path(p).resolve() for p in paths if p and os.path.isdir(p)]
    out: list[Path] = []
    for p in found:
        if p not in out and p != Path("/"):
            out.append(p)
    return out


def plan(protect: list[Path], scratch: Path) -> dict[str, list[str]]:
    """Which folders get an empty tmpfs (hidden) and which stay visible, read-only like everything else: a
    folder that holds Python or the package cannot be hidden."""
    essential = essential_paths()
    hide, readonly = [], []
    for d in protect:
        d = d.resolve()
        if any(_inside(e, d) for e in essential) or _inside(scratch.resolve(), d):
            readonly.append(str(d))
        else:
            hide.append(str(d))
    # a folder inside another hidden one is hidden with it (and its mount point would not exist any more)
    hide = [h for h in hide if not any(o != h and _inside(Path(h), Path(o)) for o in hide)]
    readonly += [str(e) for e in essential if not any(_inside(e, Path(h)) for h in hide) and str(e) not in readonly]
    temp = [t for t in ("/tmp", "/var/tmp", "/dev/shm") if os.path.isdir(t)
            and not any(_inside(e, Path(t)) for e in essential)]
    if not any(_inside(scratch.resolve(), Path(t)) for t in temp):
        temp.append(str(scratch.resolve()))
    return {"hide": hide, "readonly": readonly, "temp": temp}


def _mount_points() -> list[str]:
    """Every mount point of this mount namespace, from /proc/self/mountinfo (octal escapes decoded)."""
    points: list[str] = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if point not in points:
                points.append(point)
    return points


def apply_plan(p: dict[str, list[str]]) -> list[str]:
    """Mount as planned (in the worker's own mount namespace); -> what failed. Every mount becomes
    read-only (a kernel runs as root of its namespace, which on a host where the grader is root would
    otherwise let it write the host's files), then the hidden folders get an empty tmpfs and the temp
    folders a writable one."""
    problems = [loopback_up()]
    for point in _mount_points():
        if point == "/proc" or point.startswith("/proc/"):
            continue
        err = _mount("-o", "remount,bind,ro", point)
        if err and point == "/":
            problems.append(err)
    for d in p["hide"]:
        problems.append(_mount("-t", "tmpfs", "-o", "size=1m,mode=0755", "cnclip-hidden", d))
    for d in p["temp"]:
        problems.append(_mount("-t", "tmpfs", "-o", "mode=1777", "cnclip-tmp", d))
    return [x for x in problems if x]


# ----------------------------------------------------------------------------- process trees
def become_subreaper() -> bool:
    """Orphans of our descendants (a `setsid` child whose parent exited) are re-parented to us."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def descendants(pid: int) -> list[int]:
    """Every process under `pid` (from /proc's parent links), whatever session it is in."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def reap() -> None:
    """Collect the exit status of dead children (ours as a subreaper or PID 1)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_descendants(pid: int | None = None, rounds: int = 20) -> int:
    """SIGKILL everything under `pid` (default: this process) until nothing is left; -> how many."""
    pid = os.getpid() if pid is None else pid
    killed = 0
    for _ in range(rounds):
        found = descendants(pid)
        if not found:
            break
        for child in found:
            try:
                os.kill(child, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        time.sleep(0.05)
        reap()
    reap()
    return killed
