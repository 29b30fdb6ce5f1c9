"""Compile a C source shipped with snnlab into a shared library, once per machine, and load it.

The library is built with the system C compiler (``$CC``, else ``cc``, ``gcc`` or ``clang``) on first
use and cached under ``$SNNLAB_CACHE_DIR`` (default ``~/.cache/snnlab``) in a file named by a hash of
the source, the flags, the compiler and the CPU, so an edited source or another machine sharing the
home folder gets its own build. When that folder cannot be created or written (a read-only or missing
home), builds go to a private per-user folder in the temporary directory (:func:`fallback_cache_dir`);
when neither is writable, :class:`CBuildError` says so (``backend="auto"`` then keeps the PyTorch path). Builds are written to a temporary file and renamed, so processes
compiling at the same time do not see half-written libraries.

``-march=native`` is tried first (the library only ever runs on the machine that built it), then a
portable build. ``-ffp-contract=off`` keeps the compiler from fusing multiplies and adds that the
source writes apart, so results round as the source says.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# -ffp-contract=off: no fused multiply-adds beyond the explicit fmaf (results round as in PyTorch);
# -fno-trapping-math: floating-point exceptions are never inspected, so selects between computed values
# may be vectorised (the results do not change)
BASE_FLAGS = ("-O3", "-ffp-contract=off", "-fno-trapping-math", "-fPIC", "-shared", "-pthread")
NATIVE_FLAGS = ("-march=native",)


class CBuildError(RuntimeError):
    """The C compiler is missing or failed; the message says which and how to proceed."""


def xdg_base_dir(variable: str, default: str) -> Path:
    """An XDG base directory: ``$variable`` when it holds an absolute path, else ``~/<default>``; a relative or empty
    value is ignored, as the XDG Base Directory specification says (it would name a folder under whatever folder
    the process happens to run in).

    Example:
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"XDG_CACHE_HOME": "cache"}):  # relative: ignored
        ...     xdg_base_dir("XDG_CACHE_HOME", ".cache") == Path.home() / ".cache"
        True
        >>> with mock.patch.dict(os.environ, {"XDG_CACHE_HOME": "/tmp/cache"}):
        ...     xdg_base_dir("XDG_CACHE_HOME", ".cache")
        PosixPath('/tmp/cache')
    """
    value = os.environ.get(variable)
    return Path(value) if value and os.path.isabs(value) else Path.home() / default


def cache_dir() -> Path:
    """Folder of compiled libraries: ``$SNNLAB_CACHE_DIR`` or ``$XDG_CACHE_HOME/snnlab`` (an absolute one:
    :func:`xdg_base_dir`) or ``~/.cache/snnlab``."""
    root = os.environ.get("SNNLAB_CACHE_DIR")
    if root:
        return Path(root).expanduser()
    return xdg_base_dir("XDG_CACHE_HOME", ".cache") / "snnlab"


def fallback_cache_dir() -> Path:
    """Per-user build folder used when :func:`cache_dir` is not writable: ``<tempdir>/snnlab-<uid>``."""
    owner = str(os.getuid()) if hasattr(os, "getuid") else _user_name()
    return Path(tempfile.gettempdir()) / f"snnlab-{owner}"


def _user_name() -> str:
    try:
        import getpass

        return "".join(c for c in getpass.getuser() if c.isalnum() or c in "-_") or "user"
    except Exception:  # no user name in the environment or the password database
        return "user"


def _unusable(path: Path, private: bool) -> str | None:
    """None when builds can be written to ``path`` (created if missing), else why not.

    A ``private`` folder (the shared temporary directory's) must belong to this user and be writable by
    no one else, so that no other user can plant a library that this process would load.
    """
    try:
        path.mkdir(mode=0o700 if private else 0o777, parents=True, exist_ok=True)
        if private and hasattr(os, "getuid"):
            st = os.lstat(path)  # the folder itself: a symbolic link planted there is refused, not followed
            if stat.S_ISLNK(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
                return f"{path} is a link, belongs to another user or others may write to it"
        if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
            return f"{path} is not a writable folder"
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    return None


def build_dir() -> Path:
    """The folder new builds are written to: :func:`cache_dir` when it can be created and written, else
    :func:`fallback_cache_dir`; raises :class:`CBuildError` when neither can."""
    reasons = []
    for path, private in ((cache_dir(), False), (fallback_cache_dir(), True)):
        why = _unusable(path, private)
        if why is None:
            return path
        reasons.append(why)
    raise CBuildError("no writable folder for snnlab's compiled kernels (" + "; ".join(reasons) + "); set "
                      "SNNLAB_CACHE_DIR to a writable folder")


def _exists(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a parent we may not read
        return False


def find_compiler() -> str | None:
    """Path of the C compiler to use (``$CC`` first), or None when there is none."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name:
            path = shutil.which(name)
            if path:
                return path
    return None


def _cpu_id() -> str:
    """A description of this CPU for the cache key (model and feature flags where the OS tells them)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        keep = [ln for ln in lines if ln.startswith(("model name", "flags", "Features", "CPU part"))]
        return "\n".join(sorted(set(keep))) or platform.processor()
    except OSError:
        return platform.processor() + platform.machine()


def _compiler_id(cc: str) -> str:
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout
    except (OSError, subprocess.SubprocessError):
        return cc


def _compile(cc: str, source: Path, target: Path, flags: tuple[str, ...]) -> str | None:
    """Compile ``source`` to ``target`` atomically; return None on success, else the compiler's message."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        out = subprocess.run([cc, *flags, str(source), "-o", tmp, "-lm"], capture_output=True, text=True,
                             timeout=300)
        if out.returncode != 0:
            return (out.stderr or out.stdout).strip()[-2000:] or f"exit status {out.returncode}"
        os.replace(tmp, target)
        return None
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    finally:
        if tmp is not None and os.path.exists(tmp):
            try:
                os.remove(tmp)
            except OSError:
                pass


STALE_AFTER_S = 30 * 24 * 3600  # builds of other sources (older snnlab versions) untouched this long go


def prune_stale_builds(stem: str, keep: Path, stale_after_s: float = STALE_AFTER_S) -> list[Path]:
    """Delete cached builds of ``stem`` other than ``keep`` not modified for ``stale_after_s`` seconds.

    Called after each new build, so that the builds of edited sources (upgrades of snnlab) do not pile
    up. A build in use elsewhere that is removed is rebuilt when next needed; a loaded library is not
    affected by its file being deleted. Returns the deleted paths.
    """
    now = time.time()
    removed = []
    for path in keep.parent.glob(f"{stem}-*.so"):
        try:
            if path != keep and now - path.stat().st_mtime > stale_after_s:
                path.unlink()
                removed.append(path)
        except OSError:  # removed meanwhile by another process, or not ours to delete
            continue
    return removed


def load_c_library(source: Path) -> ctypes.CDLL:
    """Build ``source`` (if not cached) and load it; raises :class:`CBuildError` saying why it cannot.

    Example:
        >>> from snnlab.kernels.lif_cpu import SOURCE
        >>> lib = load_c_library(SOURCE)   # doctest: +SKIP
    """
    cc = find_compiler()
    if cc is None:
        raise CBuildError("no C compiler found (looked for $CC, cc, gcc, clang); install one (e.g. "
                          "'apt install gcc' or Xcode's command line tools) or set CC")
    try:
        text = source.read_bytes()
    except OSError as exc:  # e.g. the kernel's source missing from a broken install
        raise CBuildError(f"could not build {source.name}: cannot read it ({exc})") from exc
    stem = source.stem
    errors = []
    machine = (_compiler_id(cc) + "\0" + _cpu_id()).encode()  # asked once: a subprocess and /proc/cpuinfo
    folder = None
    for flags in (BASE_FLAGS + NATIVE_FLAGS, BASE_FLAGS):
        key = hashlib.sha256(b"\0".join([text, " ".join(flags).encode(), machine])).hexdigest()[:16]
        name = f"{stem}-{key}.so"
        target = cache_dir() / name  # a build there is used even when the folder is read-only
        if not _exists(target):
            folder = folder or build_dir()  # raises CBuildError when no folder is writable
            target = folder / name
        if not _exists(target):
            if not errors:  # the first build on this machine: say why the first step waits
                print(f"snnlab: compiling {source.name} for this machine (once, up to ~10 s; cached in {target.parent})",
                      file=sys.stderr, flush=True)
            err = _compile(cc, source, target, flags)
            if err is not None:
                errors.append(f"{cc} {' '.join(flags)}: {err}")
                continue
            prune_stale_builds(stem, keep=target)
        try:
            return ctypes.CDLL(str(target))
        except OSError as exc:
            errors.append(f"loading {target}: {exc}")
    raise CBuildError(f"could not build {source.name}:\n" + "\n".join(errors))
