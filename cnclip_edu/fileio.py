"""Writing files and folders so that a reader never sees half of one, and a colleague can read them.

    with atomic_open("preds.jsonl") as f:        # a text (or "wb": binary) file object
        f.write(...)
    atomic_write("config.json", text)            # str, bytes, or a callback that writes to a path:
    atomic_write("model.safetensors", lambda tmp: save_file(sd, tmp))
    with atomic_dir("lmdb/train") as tmp:        # build a whole folder aside, then swap it in
        build_into(tmp)

Why one module: every output of the project (checkpoints, LMDBs, features, predictions, metrics)
goes through the same three steps, and each step has a trap that was fixed here once:
- the data goes to a temporary name in the same folder (same file system, so `os.replace` is an
  atomic rename), fsync'ed, and only then renamed over the target: a crash, Ctrl-C or SIGKILL
  leaves the old file or the new one, never a truncated mix;
- the temporary file or folder is created like a plain `open()` / `mkdir()` would create it,
  0666 / 0777 minus the umask (so 0644 / 0755 under the usual umask 022). `tempfile.mkstemp` and
  `mkdtemp` make them 0600 / 0700, private to the owner, and the rename kept that: a colleague on a
  shared GPU server could not read our checkpoints or predictions;
- temporary names follow one pattern, `.<name>.tmp-<pid>-<tag>`, so that a later run recognises
  what a killed one left behind and can tell whether that process is still alive
  (`stale_temporaries`, `remove_stale_temporaries`).
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import signal
import stat
import sys
import tempfile
import threading
from pathlib import Path
from typing import Callable, Iterator, Union

Data = Union[str, bytes, Callable[[Path], object]]
TMP_MARK = ".tmp-"
_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<rest>.+)$")
_PID = re.compile(r"^(\d+)(?:-|$)")


# ----------------------------------------------------------------------------- names
def temp_name(path: str | os.PathLike, tag: str | None = None) -> Path:
    """`dir/.name.tmp-<pid>-<tag>`: next to `path` (same file system), recognisable, unique."""
    path = Path(path)
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{tag or secrets.token_hex(4)}")


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine (unknown counts as alive: never delete then)."""
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def stale_temporaries(folder: str | os.PathLike, name: str | None = None) -> tuple[list[Path], list[Path]]:
    """Temporary entries `.<name>.tmp-*` in `folder` (for target `name` only, if given), split into
    (left by a process that no longer exists, others). "Others" belong to a live process, or carry
    no process id (names from older versions): they may be in use, so they are only reported."""
    folder = Path(folder)
    dead, others = [], []
    if not folder.is_dir():
        return dead, others
    for p in sorted(folder.iterdir()):
        m = _TMP_NAME.match(p.name)
        if m and (name is None or m["name"] == name):
            pid = _PID.match(m["rest"])
            gone = pid is not None and int(pid[1]) != os.getpid() and not pid_alive(int(pid[1]))
            (dead if gone else others).append(p)
    return dead, others


def remove_stale_temporaries(folder: str | os.PathLike, name: str | None = None) -> tuple[list[Path], list[Path]]:
    """Delete what killed processes left in `folder` (see `stale_temporaries`); returns
    (removed, kept) so that the caller can say so."""
    dead, live = stale_temporaries(folder, name)
    for p in dead:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return dead, live


# ----------------------------------------------------------------------------- why a write failed
class OutputError(OSError):
    """An output could not be written: the message names the file and the cause (no space, a file-size
    limit, a read-only folder). The old output, if any, is intact and no temporary data is left."""


_CAUSES = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
           errno.EFBIG: "file too large (a file-size limit: `ulimit -f`, or the file system's maximum)",
           errno.EROFS: "read-only file system", errno.EACCES: "permission denied"}


def _biggest_file(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    sizes = [p.stat().st_size for p in path.rglob("*") if p.is_file()] if path.is_dir() else []
    return max(sizes, default=0)


def diagnose_write_failure(target: Path, written: Path | None, exc: BaseException) -> str | None:
    """Why writing `target` (through the temporary `written`) failed, when the cause is the storage rather
    than the data: libraries often hide it (torch.save: "unexpected pos", LMDB: "Input/output error")."""
    code = getattr(exc, "errno", None)
    if isinstance(exc, OSError) and code in _CAUSES:
        return f"{_CAUSES[code]} ({errno.errorcode[code]})"
    folder = target.parent if target.parent.exists() else Path(".")
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if soft != resource.RLIM_INFINITY and written is not None and _biggest_file(written) >= soft:
            return f"{_CAUSES[errno.EFBIG]}: the limit is {soft} bytes (EFBIG)"
    except (ImportError, OSError):
        pass
    try:
        st = os.statvfs(folder)
        if st.f_flag & getattr(os, "ST_RDONLY", 1):
            return f"{_CAUSES[errno.EROFS]} (EROFS)"
        free = st.f_bavail * st.f_frsize
        if free < 1 << 20:  # under 1 MiB left: the write ran out of room
            return f"{_CAUSES[errno.ENOSPC]}: {free} bytes free (ENOSPC)"
    except (AttributeError, OSError):
        pass
    if not os.access(folder, os.W_OK):
        return f"{_CAUSES[errno.EACCES]}: cannot write in {folder} (EACCES)"
    return None


def _explained(target: Path, written: Path | None, exc: BaseException) -> BaseException:
    """`exc`, or an OutputError naming `target` and the storage cause if one is found."""
    if isinstance(exc, OutputError) or not isinstance(exc, Exception):
        return exc
    cause = diagnose_write_failure(target, written, exc)
    if cause is None:
        return exc
    err = OutputError(getattr(exc, "errno", None) or 0, f"cannot write {target}: {cause}; "
                      f"the previous {target.name} (if any) is unchanged")
    err.filename = str(target)
    return err


# ----------------------------------------------------------------------------- files
def _create_file(path: Path) -> int:
    """Create `path` exclusively with the permissions of a plain open(): 0666 & ~umask."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX; Windows cannot open a folder for fsync)."""
    if os.name == "posix":
        with contextlib.suppress(OSError):
            _fsync_path(folder)


@contextlib.contextmanager
def _staged(path: Path, fsync: bool) -> Iterator[Path]:
    """A temporary file next to `path`, created empty with the usual mode; when the block succeeds it
    is fsync'ed and renamed onto `path`, else removed."""
    tmp = temp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = _create_file(tmp)
    except OSError as exc:
        raise _explained(path, None, exc) from exc
    usual = stat.S_IMODE(os.fstat(fd).st_mode)  # 0666 & ~umask, without touching the process umask
    os.close(fd)
    try:
        yield tmp
        if stat.S_IMODE(os.stat(tmp).st_mode) != usual:  # a writer that sets its own (safetensors: 0600)
            os.chmod(tmp, usual)
        if fsync:
            _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        explained = _explained(path, tmp, exc)
        tmp.unlink(missing_ok=True)
        if explained is exc:
            raise
        raise explained from exc
    if fsync:
        _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str = "utf-8", newline: str | None = None,
                fsync: bool = True) -> Iterator:
    """A file object on a temporary name next to `path`, renamed onto `path` when the block succeeds.

    mode: "w" (text, `encoding`) or "wb". An exception (or Ctrl-C) inside the block removes the
    temporary file and leaves an existing `path` untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', not {mode!r}")
    text = {"encoding": encoding, "newline": newline} if mode == "w" else {}
    with _staged(Path(path), fsync) as tmp, open(tmp, mode, **text) as f:
        yield f


def atomic_write(path: str | os.PathLike, data: Data, encoding: str = "utf-8", fsync: bool = True) -> Path:
    """Write `data` to `path` atomically: str (encoded), bytes, or a callback `write(tmp_path)` for
    libraries that want a file name (safetensors, torch.save, onnx). Returns `path`."""
    path = Path(path)
    if isinstance(data, (str, bytes)):
        with atomic_open(path, "w" if isinstance(data, str) else "wb", encoding=encoding, newline="",
                         fsync=fsync) as f:
            f.write(data)
    else:
        with _staged(path, fsync) as tmp:
            data(tmp)
    return path


# ----------------------------------------------------------------------------- folders
def make_temp_dir(final: str | os.PathLike) -> Path:
    """An empty folder `.<final>.tmp-<pid>-<tag>` next to `final`, with a plain mkdir's permissions."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = temp_name(final)
        try:
            tmp.mkdir(0o777)  # the umask applies, as for any mkdir
            return tmp
        except FileExistsError:  # the same random tag twice: draw again
            continue


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT / SIGTERM for the few microseconds between two renames: Ctrl-C then lands after
    the swap, never between its halves. Python runs signal handlers in the main thread whichever
    thread the signal reached (a thread's signal mask would not hold them), so the handlers are
    swapped for a recorder, and what it caught is raised again once they are back."""
    if threading.current_thread() is not threading.main_thread():  # only it may set handlers
        yield
        return
    caught: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    old = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        for s in caught:
            signal.raise_signal(s)


def replace_dir(tmp: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Put the finished folder `tmp` in place of `final` (which may exist).

    The old folder is renamed aside, the new one renamed in, then the old one deleted: at every
    moment `final` is the complete old folder or the complete new one (only a SIGKILL between the
    two renames leaves `final` missing, with both folders kept under temporary names).
    """
    tmp, final = Path(tmp), Path(final)
    old = temp_name(final, "old") if final.exists() else None
    try:
        with _signals_deferred():  # a Ctrl-C held here is raised as the block ends, after the swap
            if old is not None:
                os.replace(final, old)
            try:
                os.replace(tmp, final)
            except BaseException:
                if old is not None:
                    os.replace(old, final)  # put the old folder back
                raise
    finally:
        if old is not None and old.exists() and final.exists():
            shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(final.parent)
    return final


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Build a folder under a temporary name and swap it in for `final` when the block succeeds;
    on any exception (Ctrl-C included) the temporary folder is removed and `final` is untouched."""
    tmp = make_temp_dir(final)
    try:
        yield tmp
        replace_dir(tmp, final)
    except BaseException as exc:
        explained = _explained(Path(final), tmp, exc)
        shutil.rmtree(tmp, ignore_errors=True)
        if explained is exc:
            raise
        raise explained from exc


class _KilledDuringScratch(BaseException):
    """SIGTERM arrived inside `scratch_dir` while its default action (die at once) was in force."""


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """Within the block, SIGTERM unwinds the stack (so every `finally` runs): a handler of the program's
    own (cnclip-edu's CLI turns SIGTERM into an exception) is called as usual; where the default action
    (die at once, skipping every `finally`) was in force, `_KilledDuringScratch` is raised instead."""
    if threading.current_thread() is not threading.main_thread():  # only it may set handlers
        yield
        return
    old = signal.getsignal(signal.SIGTERM)

    def handler(signum, frame):
        if callable(old):
            old(signum, frame)
        elif old != signal.SIG_IGN:
            raise _KilledDuringScratch(signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old if old is not None else signal.SIG_DFL)


@contextlib.contextmanager
def scratch_dir(name: str) -> Iterator[Path]:
    """A working folder `<system temp>/.<name>.tmp-<pid>-<tag>`, removed when the block ends.

    Removed also when the process is sent SIGTERM inside the block (a batch scheduler, `kill`, a kernel
    stopped from outside): the default action would end the process without running any `finally`, so
    for the block's duration SIGTERM first unwinds, the folder is removed, and then the process dies of
    SIGTERM as before. A SIGKILL cannot be caught: what it leaves is removed by the next `scratch_dir`
    of the same name (its pid no longer exists)."""
    base = Path(tempfile.gettempdir())
    remove_stale_temporaries(base, name)
    tmp = make_temp_dir(base / name)
    killed = False
    try:
        with _sigterm_unwinds():
            yield tmp
    except _KilledDuringScratch:
        killed = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if killed:
        signal.raise_signal(signal.SIGTERM)  # the default action, now that the folder is gone


# ----------------------------------------------------------------------------- one writer per output
class OutputLocked(RuntimeError):
    """Another live process is writing the same output; the message names its pid."""


@contextlib.contextmanager
def output_lock(target: str | os.PathLike, what: str = "output") -> Iterator[Path]:
    """Hold `.<name>.lock` next to `target` while writing it: a second writer of the same output (two
    `build-lmdb` runs on one folder, two trainings into one run folder) fails at once with the holder's
    pid, instead of both "succeeding" and the later silently replacing the earlier. The lock is an
    flock, so the kernel drops it when its holder dies however it dies; a lock file whose recorded
    holder is dead is reported as cleared. POSIX only (elsewhere no lock is taken)."""
    target = Path(target)
    lock = target.parent / f".{target.name}.lock"
    try:
        import fcntl
    except ImportError:  # Windows
        yield lock
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise OutputLocked(f"{target} is being written by another process (pid {holder}, lock {lock}); "
                               f"wait for it to finish, or stop it") from None
        try:  # the file we locked may have been removed by the previous holder's release: lock the new one
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    previous = os.pread(fd, 64, 0).decode(errors="replace").strip()
    if previous.isdigit() and int(previous) != os.getpid() and not pid_alive(int(previous)):
        print(f"note: cleared the lock of {what} {target} left by pid {previous}, which is no longer running",
              file=sys.stderr)
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    try:
        yield lock
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        os.close(fd)  # closing drops the flock
