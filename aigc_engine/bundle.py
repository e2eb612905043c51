"""The on-disk model format: a bundle directory.

A bundle holds ``manifest.json`` and payload files. The manifest records the
format version, the generator and the plugin (with version) that wrote it,
the config, metrics, and the size and SHA-256 of every payload file, so a
truncated or altered payload is refused on load. Nothing in a bundle is ever
executed: no pickle.

Writes are atomic: the bundle is built in a temporary sibling directory, every
file and the directory are fsynced, and it then replaces the old bundle by
rename. A crash at any point leaves either the old bundle or the new one.
Saves to one folder hold an exclusive lock on the parent directory (``flock``),
loads a shared one, so concurrent saves each succeed and a load never sees a
bundle half replaced.

Loading trusts only what the manifest vouches for: every file in the bundle
must be listed in it with its size and SHA-256, and symbolic links (or other
non-regular files) are refused, so nothing outside the bundle is ever read.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: saves are not locked
    fcntl = None  # type: ignore[assignment]

from .errors import ModelFormatError

FORMAT = "aigc-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_TMP_PREFIX = ".aigc-tmp-"
_OLD_PREFIX = ".aigc-old-"


@dataclasses.dataclass
class Manifest:
    """What ``manifest.json`` holds."""

    generator: str
    plugin: str
    plugin_version: str
    config: dict[str, Any]
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    files: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    engine_version: str = ""

    def to_json(self) -> dict[str, Any]:
        """The manifest as written to disk."""
        return {
            "format": FORMAT,
            "format_version": self.format_version,
            "engine_version": self.engine_version,
            "generator": self.generator,
            "plugin": {"name": self.plugin, "version": self.plugin_version},
            "config": self.config,
            "metrics": self.metrics,
            "files": self.files,
            **({"extra": self.extra} if self.extra else {}),
        }

    @classmethod
    def from_json(cls, data: Any, *, where: str) -> Manifest:
        """Parse and check a manifest; ``where`` names the file in errors."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ModelFormatError(f"{where} is not an aigc bundle manifest (no format {FORMAT!r})")
        version = data.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ModelFormatError(f"{where}: format_version is missing or not an integer")
        if version > FORMAT_VERSION:
            shown = str(version) if version < 10**12 else f"{str(version)[:12]}... (huge)"
            raise ModelFormatError(
                f"{where}: bundle format version {shown} is newer than this aigc-engine "
                f"supports ({FORMAT_VERSION}); upgrade aigc-engine to load it"
            )
        if version < 1:
            raise ModelFormatError(f"{where}: invalid bundle format version "
                                   f"{version if version > -10**12 else 'below -10**12'}")
        try:
            plugin = data["plugin"]
            manifest = cls(
                generator=_str(data["generator"], "generator", where),
                plugin=_str(plugin["name"], "plugin.name", where),
                plugin_version=_str(plugin["version"], "plugin.version", where),
                config=_dict(data["config"], "config", where),
                metrics=_dict(data.get("metrics", {}), "metrics", where),
                files=_dict(data.get("files", {}), "files", where),
                extra=_dict(data.get("extra", {}), "extra", where),
                format_version=version,
                engine_version=str(data.get("engine_version", "")),
            )
        except (KeyError, TypeError) as exc:
            raise ModelFormatError(f"{where}: missing or invalid field {exc}") from None
        for name, entry in manifest.files.items():
            _check_payload_name(name, where)
            if not isinstance(entry, dict) or not isinstance(entry.get("size"), int) \
                    or not isinstance(entry.get("sha256"), str):
                raise ModelFormatError(f"{where}: bad entry for payload file {name!r}")
        return manifest

    def payload(self, directory: str | os.PathLike[str], name: str) -> Path:
        """The path of payload file ``name`` in a verified bundle ``directory``.

        Loaders read payload files through this, so a file the manifest does
        not list (with size and hash) is never read: a ModelFormatError says so.
        """
        if name not in self.files:
            raise ModelFormatError(
                f"bundle {os.fspath(directory)!r} is incomplete: its manifest does not list "
                f"{name!r}, which this generator needs"
            )
        return Path(directory) / name


def read_json(path: str | os.PathLike[str], *, what: str = "") -> Any:
    """Parse a JSON file; any failure is a ModelFormatError naming the file.

    Catches what ``json`` raises on hostile input as well as on bad syntax:
    invalid UTF-8, integers over Python's digit limit (a ValueError), nesting
    deep enough to exhaust the stack (RecursionError). A UTF-8 byte-order mark
    is accepted. ``what`` describes the file in the message ("grammar").
    """
    where = os.fspath(path)
    label = f"{what} {where!r}" if what else repr(where)
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ModelFormatError(
            f"{label} is not valid UTF-8 (byte {exc.start}: {exc.reason})") from None
    except OSError as exc:
        raise ModelFormatError(f"cannot read {label}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelFormatError(
            f"{label} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise ModelFormatError(f"{label} is not usable JSON: it is nested too deeply") from None
    except ValueError as exc:  # e.g. "Exceeds the limit (4300 digits) for integer string"
        raise ModelFormatError(f"{label} is not usable JSON: {exc}") from None


def _str(value: Any, field: str, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ModelFormatError(f"{where}: field {field!r} must be a non-empty string")
    return value


def _dict(value: Any, field: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ModelFormatError(f"{where}: field {field!r} must be an object")
    return value


def _check_payload_name(name: str, where: str) -> None:
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts or name == MANIFEST:
        raise ModelFormatError(f"{where}: invalid payload file name {name!r}")


@dataclasses.dataclass
class LoadedBundle:
    """A verified bundle: its directory and manifest."""

    path: Path
    manifest: Manifest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _engine_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aigc-engine")
    except PackageNotFoundError:
        return "unknown"


@contextlib.contextmanager
def _locked(folder: Path, *, exclusive: bool) -> Iterator[None]:
    """An advisory lock on ``folder`` (the bundle's parent): exclusive for saves,
    shared for loads. Released when the process dies, so a crash never leaves it."""
    if fcntl is None:
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # an unreadable parent: nothing to coordinate with
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        except OSError:  # a file system without locks (some network mounts)
            pass
        yield
    finally:
        os.close(fd)  # releases the lock


def _parent(target: Path) -> Path:
    return target.parent if str(target.parent) else Path(".")


# Parent folders this thread holds a shared (reading) or exclusive (saving) lock on.
_reading: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "aigc_bundle_reading", default=frozenset())
_writing: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "aigc_bundle_writing", default=frozenset())


@contextlib.contextmanager
def reading(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold while loading a bundle: no save replaces it in the meantime.

    A save interrupted between its two renames is finished first (under the
    save lock), then a shared lock is held until the block ends.
    """
    target = Path(path)
    parent = _parent(target)
    key = os.path.abspath(parent)
    if key in _reading.get() or not parent.is_dir():
        yield
        return
    _recover(target, locked=False)
    with _locked(parent, exclusive=False):
        token = _reading.set(_reading.get() | {key})
        try:
            yield
        finally:
            _reading.reset(token)


def write_bundle(path: str | os.PathLike[str], manifest: Manifest,
                 write_payload: Callable[[Path], None]) -> Path:
    """Write a bundle atomically.

    ``write_payload(directory)`` writes the payload files into a fresh temporary
    directory; their sizes and hashes go into the manifest. The directory then
    replaces ``path``. Returns the bundle's path.
    """
    target = Path(path)
    parent = _parent(target)
    parent.mkdir(parents=True, exist_ok=True)
    key = os.path.abspath(parent)
    if key in _reading.get() or key in _writing.get():
        raise ModelFormatError(
            f"cannot save a bundle into {str(parent)!r} while a bundle of that folder is being "
            "loaded or saved by this thread (the save would wait for itself)")
    with _locked(parent, exclusive=True):
        token = _writing.set(_writing.get() | {key})
        try:
            return _write_locked(target, parent, manifest, write_payload)
        finally:
            _writing.reset(token)


def _write_locked(target: Path, parent: Path, manifest: Manifest,
                  write_payload: Callable[[Path], None]) -> Path:
    if target.is_symlink():
        raise ModelFormatError(
            f"cannot save a bundle to {str(target)!r}: it is a symbolic link")
    if target.exists() and not target.is_dir():
        raise ModelFormatError(f"cannot save a bundle to {str(target)!r}: it is a file")
    if target.is_dir() and any(target.iterdir()) and not (target / MANIFEST).exists():
        raise ModelFormatError(
            f"refusing to replace {str(target)!r}: it is a non-empty directory without "
            f"{MANIFEST}, not a bundle"
        )
    _recover(target)
    _remove_stale(target)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{target.name}-", dir=parent))
    try:
        write_payload(tmp)
        files: dict[str, dict[str, Any]] = {}
        for item in sorted(tmp.rglob("*")):
            if item.is_file():
                rel = item.relative_to(tmp).as_posix()
                files[rel] = {"size": item.stat().st_size, "sha256": _sha256(item)}
                _fsync_path(item)
        manifest = dataclasses.replace(manifest, files=files, engine_version=_engine_version())
        manifest_path = tmp / MANIFEST
        with open(manifest_path, "w", encoding="utf-8") as fh:
            json.dump(manifest.to_json(), fh, indent=2, sort_keys=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        for sub in sorted({p.parent for p in tmp.rglob("*")} | {tmp}, reverse=True):
            _fsync_path(sub)
        if target.exists():
            old = parent / f"{_OLD_PREFIX}{target.name}"
            if old.exists():
                shutil.rmtree(old)
            os.rename(target, old)
            os.rename(tmp, target)
            _fsync_path(parent)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
        _fsync_path(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _recover(target: Path, *, locked: bool = True) -> None:
    """Finish an interrupted replace: restore the old bundle if the new one never landed.

    ``locked``: the caller holds the save lock. Otherwise the lock is taken
    first, so a save that is between its two renames finishes instead.
    """
    old = _parent(target) / f"{_OLD_PREFIX}{target.name}"
    if not (old.is_dir() and not target.exists()):
        return
    if os.path.abspath(_parent(target)) in _reading.get():
        return  # done by reading() before it took its lock
    if not locked:
        with _locked(_parent(target), exclusive=True):
            _recover(target, locked=True)
        return
    os.rename(old, target)


def _remove_stale(target: Path) -> None:
    """Remove temporary directories left by saves that crashed (called under the lock:
    a folder of a save that is still running is never removed)."""
    parent = _parent(target)
    for stale in parent.glob(f"{_TMP_PREFIX}{target.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and check a bundle's manifest without verifying the payload."""
    target = Path(path)
    _recover(target, locked=False)
    if not target.exists():
        raise ModelFormatError(f"no bundle at {str(target)!r}: the path does not exist")
    if not target.is_dir():
        raise ModelFormatError(f"{str(target)!r} is not a bundle directory")
    manifest_path = target / MANIFEST
    if manifest_path.is_symlink():
        raise ModelFormatError(
            f"bundle {str(target)!r} is refused: {MANIFEST} is a symbolic link (a bundle's "
            "files must be inside it)")
    if not manifest_path.exists():
        raise ModelFormatError(f"{str(target)!r} is not a bundle: {MANIFEST} is missing")
    if not manifest_path.is_file():
        raise ModelFormatError(f"bundle {str(target)!r} is refused: {MANIFEST} is not a file")
    where = str(manifest_path)
    data = read_json(manifest_path)
    try:
        return Manifest.from_json(data, where=where)
    except RecursionError:
        raise ModelFormatError(f"{where} is nested too deeply") from None


def _bundle_files(target: Path) -> set[str]:
    """The regular files under ``target`` (relative POSIX paths), refusing links,
    devices, pipes and sockets: nothing outside the bundle is followed or read."""
    files: set[str] = set()
    pending = [target]
    while pending:
        folder = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                rel = Path(entry.path).relative_to(target).as_posix()
                mode = entry.stat(follow_symlinks=False).st_mode
                if stat.S_ISLNK(mode):
                    raise ModelFormatError(
                        f"bundle {str(target)!r} is refused: {rel} is a symbolic link (a "
                        "bundle's files must be inside it, not linked)")
                if stat.S_ISDIR(mode):
                    pending.append(Path(entry.path))
                elif stat.S_ISREG(mode):
                    files.add(rel)
                else:
                    raise ModelFormatError(
                        f"bundle {str(target)!r} is refused: {rel} is not a regular file")
    return files


def read_bundle(path: str | os.PathLike[str]) -> LoadedBundle:
    """Read a bundle's manifest and verify every payload file's size and hash."""
    target = Path(path)
    manifest = read_manifest(target)
    present = _bundle_files(target) - {MANIFEST}
    unlisted = sorted(present - set(manifest.files))
    if unlisted:
        raise ModelFormatError(
            f"bundle {str(target)!r} is refused: {', '.join(unlisted)} "
            f"{'is' if len(unlisted) == 1 else 'are'} not listed in its manifest (every file "
            "a bundle holds must be listed with its size and SHA-256)")
    for name, entry in manifest.files.items():
        file = target / name
        if name not in present:
            raise ModelFormatError(f"bundle {str(target)!r} is incomplete: {name} is missing")
        size = file.stat().st_size
        if size != entry["size"]:
            raise ModelFormatError(
                f"bundle {str(target)!r} is damaged: {name} has {size} bytes, "
                f"the manifest says {entry['size']} (truncated or replaced)"
            )
        if _sha256(file) != entry["sha256"]:
            raise ModelFormatError(
                f"bundle {str(target)!r} is damaged: {name} does not match its SHA-256 "
                "in the manifest"
            )
    return LoadedBundle(path=target, manifest=manifest)
