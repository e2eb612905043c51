"""The on-disk model format: a bundle directory.

A bundle holds ``manifest.json`` and payload files. The manifest records the
format version, the generator and the plugin (with version) that wrote it,
the config, metrics, and the size and SHA-256 of every payload file, so a
truncated or altered payload is refused on load. Nothing in a bundle is ever
executed: no pickle.

Writes are atomic: the bundle is built in a temporary sibling directory, every
file and the directory are fsynced, and it then replaces the old bundle by
rename. A crash at any point leaves either the old bundle or the new one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
            raise ModelFormatError(
                f"{where}: bundle format version {version} is newer than this aigc-engine "
                f"supports ({FORMAT_VERSION}); upgrade aigc-engine to load it"
            )
        if version < 1:
            raise ModelFormatError(f"{where}: invalid bundle format version {version}")
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


def write_bundle(path: str | os.PathLike[str], manifest: Manifest,
                 write_payload: Callable[[Path], None]) -> Path:
    """Write a bundle atomically.

    ``write_payload(directory)`` writes the payload files into a fresh temporary
    directory; their sizes and hashes go into the manifest. The directory then
    replaces ``path``. Returns the bundle's path.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
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


def _recover(target: Path) -> None:
    """Finish an interrupted replace: restore the old bundle if the new one never landed."""
    old = target.parent / f"{_OLD_PREFIX}{target.name}"
    if old.is_dir() and not target.exists():
        os.rename(old, target)


def _remove_stale(target: Path) -> None:
    """Remove temporary directories left by saves that crashed."""
    parent = target.parent if str(target.parent) else Path(".")
    for stale in parent.glob(f"{_TMP_PREFIX}{target.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and check a bundle's manifest without verifying the payload."""
    target = Path(path)
    _recover(target)
    if not target.exists():
        raise ModelFormatError(f"no bundle at {str(target)!r}: the path does not exist")
    if not target.is_dir():
        raise ModelFormatError(f"{str(target)!r} is not a bundle directory")
    manifest_path = target / MANIFEST
    if not manifest_path.is_file():
        raise ModelFormatError(f"{str(target)!r} is not a bundle: {MANIFEST} is missing")
    where = str(manifest_path)
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{where} is not valid JSON: {exc}") from None
    return Manifest.from_json(data, where=where)


def read_bundle(path: str | os.PathLike[str]) -> LoadedBundle:
    """Read a bundle's manifest and verify every payload file's size and hash."""
    target = Path(path)
    manifest = read_manifest(target)
    for name, entry in manifest.files.items():
        file = target / name
        if not file.is_file():
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
