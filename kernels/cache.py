"""On-disk cache of generated kernel modules.

Generated source is written once to ``<cache>/dk_<hash>.py``, where the hash covers what
determines the code (the derivation, dtype, optimizer rule, codegen version and numba's
version); numba's ``cache=True`` then keeps the compiled machine code beside it in
``__pycache__``, so a second process only loads object code.

* Location: ``$DERIVEKIT_CACHE`` or ``~/.cache/derivekit``. If that folder cannot be
  written, a temporary folder is used instead, with a warning.
* Files are written to a temporary name and renamed, so no reader ever sees half a file.
* A module file whose checksum line does not match its text (corrupted, truncated or
  edited) is regenerated; a corrupted numba cache file is deleted and the kernel recompiled
  (:func:`call` does this on the first call, where numba reads those files).
"""
from __future__ import annotations

import glob
import hashlib
import importlib.util
import os
import sys
import tempfile
import warnings
from pathlib import Path

CODEGEN_VERSION = "1"
_checked = {}


class CacheWarning(UserWarning):
    """The cache folder could not be used as asked (a fallback was taken)."""


def folder():
    """The cache folder to use (created; writable, or a temporary fallback with a warning)."""
    wanted = Path(os.environ.get("DERIVEKIT_CACHE") or Path.home() / ".cache" / "derivekit")
    if wanted in _checked:
        return _checked[wanted]
    usable = wanted if _writable(wanted) else None
    if usable is None:
        usable = Path(tempfile.gettempdir()) / f"derivekit-cache-{os.getuid()}"
        usable.mkdir(parents=True, exist_ok=True)
        warnings.warn(f"cache folder {wanted} is not writable; using {usable}", CacheWarning,
                      stacklevel=3)
    _checked[wanted] = usable
    return usable


def _writable(path):
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
        return True
    except OSError:
        return False


def key(*parts):
    """A content hash of ``parts`` (strings or reprs), plus the code generator's and
    numba's versions, which also change the compiled code."""
    import numba

    h = hashlib.sha256()
    for part in (CODEGEN_VERSION, numba.__version__) + parts:
        h.update(part if isinstance(part, bytes) else str(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


def write_atomic(path, data):
    """Write ``data`` (str or bytes) to ``path`` via a temporary file and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def path_for(k):
    """Where the module with key ``k`` lives."""
    return folder() / f"dk_{k}.py"


def lookup(k):
    """Text of the module cached under ``k`` (None if absent or unreadable) and its path."""
    path = path_for(k)
    try:
        return path.read_text(), path
    except (OSError, UnicodeDecodeError):
        return None, path


def _stamp(source):
    return f"# derivekit-sha256: {hashlib.sha256(source.encode()).hexdigest()}\n" + source


def intact(text):
    """True if ``text`` carries a checksum line that matches the rest of it."""
    head, _, body = text.partition("\n")
    return head == _stamp(body).partition("\n")[0]


def load(k, generate):
    """Import the module cached under ``k``; ``generate()`` gives its source when the
    file is missing or corrupted (its checksum line does not match).

    An intact file is never rewritten: that would change its time stamp and make numba
    throw its compiled code away.
    """
    text, path = lookup(k)
    if text is None or not intact(text):
        if text is not None:
            warnings.warn(f"corrupted cache file {path.name}; regenerating", CacheWarning,
                          stacklevel=2)
        _purge_numba(path)
        write_atomic(path, _stamp(generate()))
    return _import(path)


def _import(path):
    name = f"derivekit_kernels.{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _purge_numba(path):
    pattern = str(Path(path).parent / "__pycache__" / f"{Path(path).stem}.*.nb[ic]")
    for f in glob.glob(pattern):
        try:
            os.unlink(f)
        except OSError:
            pass


def _from_numba_cache(exc):
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(os.path.join("numba", "core", "caching.py")):
            return True
        tb = tb.tb_next
    return False


def call(module, name, *args):
    """``module.name(*args)``; if numba's cache files for it are corrupted, delete them,
    reimport the module (recompiling) and call again. Returns (result, module)."""
    try:
        return getattr(module, name)(*args), module
    except Exception as exc:  # noqa: BLE001 - only numba cache failures are handled
        if not _from_numba_cache(exc):
            raise
    path = Path(module.__file__)
    warnings.warn(f"corrupted numba cache for {path.name}; recompiling", CacheWarning,
                  stacklevel=2)
    _purge_numba(path)
    module = _import(path)
    return getattr(module, name)(*args), module
