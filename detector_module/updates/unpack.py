"""Safe unpacking of a package zip into a staging folder, then validation via package.py.

Refused: entries with ``..``, absolute paths, drive letters, backslashes, symlinks (or any
non-regular entry), nested folders, duplicate names; archives over the total size, ratio or
entry-count limits. Sizes are enforced while extracting too, so a header that lies about
``file_size`` cannot write more than the limit.
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

from detector_module.package import ModelPackage, PackageError, load_package

MAX_ENTRIES = 64
MAX_RATIO = 200.0  # uncompressed / compressed, over the whole archive
_BLOCK = 1 << 20


class UnpackError(PackageError):
    """An archive refused for safety or because it is not a usable package."""


def _check_name(name: str) -> str:
    if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnpackError(f"unsafe entry {name!r}: absolute path or backslash")
    parts = PurePosixPath(name).parts
    if ".." in parts:
        raise UnpackError(f"unsafe entry {name!r}: '..' in path")
    if len(parts) != 1 or name.startswith("."):
        raise UnpackError(f"unexpected entry {name!r}: a package is flat (no folders)")
    return name


def _check_entries(infos: list[zipfile.ZipInfo], *, max_bytes: int, max_entries: int,
                   max_ratio: float) -> int:
    """Refuse unsafe names, non-regular entries, duplicates and bombs; the declared total."""
    if len(infos) > max_entries:
        raise UnpackError(f"{len(infos)} entries, over the limit of {max_entries}")
    seen: set[str] = set()
    for info in infos:
        _check_name(info.filename)
        mode = info.external_attr >> 16
        if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
            raise UnpackError(f"unsafe entry {info.filename!r}: not a regular file "
                              "(symlink or device)")
        if info.filename in seen:
            raise UnpackError(f"duplicate entry {info.filename!r}")
        seen.add(info.filename)
    total = sum(i.file_size for i in infos)
    packed = max(1, sum(i.compress_size for i in infos))
    if total > max_bytes:
        raise UnpackError(f"unpacks to {total} bytes, over the {max_bytes} byte limit")
    if total / packed > max_ratio:
        raise UnpackError(f"compression ratio {total / packed:.0f}:1 over the limit of "
                          f"{max_ratio:.0f}:1 (zip bomb?)")
    return total


def _extract(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], dest: Path,
             limit: int) -> None:
    """Write the entries, counting real bytes against the declared total (a header can lie),
    each flushed to the disk: the repository renames the folder into place right after."""
    written = 0
    for info in infos:
        with zf.open(info) as src, (dest / info.filename).open("xb") as out:
            while block := src.read(_BLOCK):
                written += len(block)
                if written > limit:
                    raise UnpackError("archive expands beyond its declared size")
                out.write(block)
            out.flush()
            os.fsync(out.fileno())


def unpack(zip_path: Path, dest: Path, *, max_bytes: int, max_entries: int = MAX_ENTRIES,
           max_ratio: float = MAX_RATIO) -> ModelPackage:
    """Extract ``zip_path`` into the new folder ``dest`` and validate it as a package.

    On any failure ``dest`` is removed and UnpackError (a PackageError) is raised."""
    dest.mkdir(parents=True, exist_ok=False)
    try:
        if not zipfile.is_zipfile(zip_path):
            raise UnpackError("the download is not a zip file")
        with zipfile.ZipFile(zip_path) as zf:
            infos = [i for i in zf.infolist() if not i.filename.endswith("/")]
            total = _check_entries(infos, max_bytes=max_bytes, max_entries=max_entries,
                                   max_ratio=max_ratio)
            _extract(zf, infos, dest, total)
        package = load_package(dest, max_bytes=max_bytes)
        if not package.labels:
            raise UnpackError("the package holds no labels (labels.txt)")
        return package
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise UnpackError(f"broken archive: {exc}") from exc
    except Exception:
        shutil.rmtree(dest, ignore_errors=True)
        raise
