"""Atomic writes: write to a temporary file (or folder) beside the target, fsync, then rename.

`os.replace` is atomic on POSIX within one file system, so a reader (or a crash) sees either
the old file or the complete new one, never a half-written file. A folder cannot be renamed onto
a non-empty one, so `atomic_dir` moves the old folder aside first: a reader then sees the old
folder, the complete new one or (for the instant between the two renames) none, never half of one.

Permissions are those a plain `open(path, "w")` or `mkdir` would give: `tempfile` makes its files
0600 and its folders 0700 (private, as a temporary file should be), so without a chmod every report,
model bundle and checkpoint would be unreadable to anyone else, a web server or the model-server
container (user 10001) included.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator

from dlroadmap.errors import UserError


# File types that hold Python pickles (torch.save, joblib): loading one can run arbitrary code, so nothing here reads
# them. Kept here, free of torch, because the model server checks folders with it and may run without torch.
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt", ".joblib")


def _read_umask() -> int:
    mask = os.umask(0o022)      # the only way to read it is to set it: done once, at import, before any thread starts
    os.umask(mask)
    return mask


UMASK = _read_umask()


def plain_mode(path: Path, folder: bool = False) -> int:
    """What `open(path, "w")` / `mkdir(path)` would give: a file that exists keeps its mode, a new one gets 0666
    (a folder 0777) less the umask."""
    if not folder:
        with contextlib.suppress(OSError):
            return stat.S_IMODE(path.stat().st_mode)
    return (0o777 if folder else 0o666) & ~UMASK


def _writable(path: str | os.PathLike, *, folder: bool) -> Path:
    """`path` as a Path whose parent folder exists, or one UserError line when the path names the wrong kind of
    thing (a folder where a file goes, or the reverse): checked before any work is written."""
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise UserError(f"{path} is a file, but a folder is written there: give a folder path (or remove the file)")
    if not folder and path.is_dir():
        raise UserError(f"{path} is a folder, but a file is written there: give a file path such as {path / 'out'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"cannot write {path}: a file stands where a folder on its path should be") from None
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, on error delete it."""
    path = _writable(path, folder=False)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # Not mkstemp's 0600 (see the module's docstring). After the block: a writer may have replaced the file
        # with one of its own (safetensors writes a temporary file of its own and renames it: 0600 again).
        os.chmod(tmp, plain_mode(path, folder=False))
        with open(tmp, "rb+") as f:  # flush the data to disk before the rename makes it visible
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; when the block succeeds it becomes `path` (a folder
    already there is replaced), when the block raises it is deleted and `path` is left as it was."""
    path = _writable(path, folder=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = None
    try:
        os.chmod(tmp, plain_mode(path, folder=True))     # not mkdtemp's 0700
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.rename(path, old)                # onto an empty folder: allowed, and atomic
            try:
                os.rename(tmp, path)
            except BaseException:
                os.rename(old, path)            # the new folder could not go in: the old one goes back
                raise
        else:
            os.rename(tmp, path)
        fsync_dir(path.parent)                  # the rename itself survives a crash
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) while the block runs: another process that asks
    for the same lock waits. For one-off set-up that two processes may race to do (two `dlr run` commands
    creating one MLflow store). POSIX flock; where there is none (Windows) the block runs unlocked."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename into it) to disk; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def as_written(obj: Any) -> Any:
    """`obj` as write_json stores it and json.loads reads it back (tuples become lists, paths strings, ...):
    what to compare a saved file's contents with."""
    return json.loads(json.dumps(obj, default=_json_default))


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy / torch scalars
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def file_hash(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks (datasets can be large)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_writable_dir(path: str | os.PathLike) -> Path:
    """Create `path` if needed and prove we can write there; raise UserError otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(f"cannot write to output folder {path} ({e.strerror or e}); pass a writable --out DIR") from None
    return path


def user_cache_dir() -> Path:
    """dlroadmap's folder in the user's cache ($XDG_CACHE_HOME, else ~/.cache): downloads, compiled kernels, measured choices."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dlroadmap"


def checkout_root(needs: str) -> Path:
    """The repository checkout this package runs from (src layout: <root>/src/dlroadmap), for the nodes that read
    files which live beside the package rather than in it (hubconf.py, Dockerfile). `needs` names that file."""
    root = Path(__file__).resolve().parents[2]
    if not (root / needs).is_file():
        raise UserError(f"no {needs} in {root}: it lives in a checkout of the repository; run this from one "
                        "(git clone ...; pip install -e .)")
    return root


def podman_available() -> bool:
    """Whether a container engine (podman) is on PATH: the container checks run only where one is."""
    import shutil

    return shutil.which("podman") is not None
