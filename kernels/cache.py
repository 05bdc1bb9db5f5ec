"""On-disk cache of generated kernel modules.

Generated source is written once to ``<cache>/dk_<hash>.py``, where the hash covers what
determines the code (the derivation, dtype, optimizer rule, codegen version and numba's
version); numba's ``cache=True`` then keeps the compiled machine code beside it in
``__pycache__``, so a second process only loads object code.

* Location: ``$DERIVEKIT_CACHE`` or ``~/.cache/derivekit``. If that folder cannot be
  used (not writable, not the user's, writable by others), ``$TMPDIR/derivekit-cache-<uid>``
  is used instead, with a warning; if *that* is not the user's private folder either
  (someone else made it first), a fresh private folder for this process (``mkdtemp``),
  rather than an error, so another user cannot stop derivekit by squatting the name.
* Trust: importing a cached module runs it, and numba's index and data files beside it
  are pickles (loading one runs code too). So a module or numba file is used only from
  a folder owned by the user that no one else can write, and only when the file itself
  is the user's regular file that no one else can write (checked on the open file);
  anything else is deleted and regenerated. The folders are created 0700.
* Integrity: the first line of a module is the SHA-256 of the rest of its bytes, exactly
  as stored (no newline translation or decoding first); a file whose line does not
  match (corrupted, truncated or edited) is regenerated, and the bytes that were checked
  are the bytes compiled (nothing is read again from the path, and no ``.pyc`` is used).
  A corrupted numba cache file is deleted and the kernel recompiled (:func:`call` does
  this on the first call, where numba reads those files).
* Files are written to a temporary name and renamed, so no reader ever sees half a file.
"""
from __future__ import annotations

import atexit
import glob
import hashlib
import os
import shutil
import stat
import sys
import tempfile
import types
import warnings
from pathlib import Path

CODEGEN_VERSION = "1"
_checked = {}
_HEAD = b"# derivekit-sha256: "


class CacheWarning(UserWarning):
    """The cache folder could not be used as asked (a fallback was taken), or a cached
    file was not trusted or intact and was regenerated."""


# -- where, and whether to trust it -----------------------------------------------------
def folder():
    """The cache folder to use: created private (0700), owned by the user and not
    writable by anyone else; otherwise a fallback, with a warning."""
    wanted = Path(os.environ.get("DERIVEKIT_CACHE") or Path.home() / ".cache" / "derivekit")
    if wanted in _checked:
        return _checked[wanted]
    problem = _unusable(wanted, follow=True)
    usable = wanted
    if problem is not None:
        usable = _fallback()
        warnings.warn(f"cache folder {wanted} {problem}; using {usable}", CacheWarning,
                      stacklevel=3)
    _checked[wanted] = usable
    return usable


def _owned_private(st):
    """True for a file or folder of the user's that no one else can write."""
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _unusable(path, follow):
    """None if ``path`` is a folder the cache may use, else why not (a phrase).

    ``follow``: a symbolic link is accepted (the user's own setting) or, for the
    shared temporary folder, refused (another user may have planted it).
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.stat(path) if follow else os.lstat(path)
    except OSError as e:
        return f"is not writable ({e.strerror or e})"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a folder (a symbolic link or a file)"
    if st.st_uid != os.getuid():
        return f"belongs to another user (uid {st.st_uid}), so its modules are not trusted"
    if not _owned_private(st):
        return (f"can be written by other users (mode {stat.S_IMODE(st.st_mode):04o}), so "
                f"its modules are not trusted (chmod go-w to use it)")
    if not _writable(path):
        return "is not writable"
    return None


def _fallback():
    shared = Path(tempfile.gettempdir()) / f"derivekit-cache-{os.getuid()}"
    problem = _unusable(shared, follow=False)
    if problem is None:
        return shared
    private = Path(tempfile.mkdtemp(prefix=f"derivekit-cache-{os.getuid()}-"))  # 0700
    atexit.register(shutil.rmtree, private, ignore_errors=True)
    warnings.warn(f"{shared} {problem}; using a new private folder for this run",
                  CacheWarning, stacklevel=4)
    return private


def _writable(path):
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=".probe-")
        os.close(fd)
        os.unlink(probe)
        return True
    except OSError:
        return False


# -- keys, writing, reading -------------------------------------------------------------
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
    """Write ``data`` (str or bytes) to ``path`` via a temporary file (mode 0600) and a
    rename; on any failure the temporary file is removed and ``path`` is untouched."""
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


def read_trusted(path):
    """The bytes of ``path`` if it is the user's regular file that no one else can write
    (checked on the open file, not followed through a link); None if it is missing.

    Raises
    ------
    PermissionError
        The file exists but is not trusted (the caller deletes and regenerates it).
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as e:  # ELOOP: a symbolic link
        raise PermissionError(f"{Path(path).name} cannot be opened as a plain file "
                              f"({e.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or not _owned_private(st):
            raise PermissionError(f"{Path(path).name} is not the user's own file (owner uid "
                                  f"{st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o})")
        return f.read()


def lookup(k):
    """Bytes of the module cached under ``k`` (None if absent, untrusted or unreadable)
    and its path."""
    path = path_for(k)
    try:
        return read_trusted(path), path
    except OSError:
        return None, path


def _stamp(source):
    """``source`` (str or bytes) as bytes, behind a line with the SHA-256 of those bytes."""
    body = source.encode() if isinstance(source, str) else source
    return _HEAD + hashlib.sha256(body).hexdigest().encode() + b"\n" + body


def intact(data):
    """True if ``data`` (bytes, or str encoded as UTF-8) starts with a checksum line that
    matches every byte after it."""
    data = data.encode() if isinstance(data, str) else data
    head, newline, body = data.partition(b"\n")
    return bool(newline) and head == _stamp(body).partition(b"\n")[0]


def load(k, generate):
    """Import the module cached under ``k``; ``generate()`` gives its source when the
    file is missing, not trusted, or corrupted (its checksum line does not match).

    An intact, trusted file is never rewritten: that would change its time stamp and
    make numba throw its compiled code away.
    """
    path = path_for(k)
    data = _trusted_module(path)
    if data is None:
        _purge_numba(path)
        data = _stamp(generate())
        write_atomic(path, data)
    return _import(path, data)


def _trusted_module(path):
    """The module's bytes when present, trusted and intact; else None (with a warning
    and the file deleted if it was there)."""
    try:
        data = read_trusted(path)
    except PermissionError as e:
        warnings.warn(f"untrusted cache file: {e}; regenerating", CacheWarning, stacklevel=3)
        _remove(path)
        return None
    except OSError:
        return None
    if data is not None and not intact(data):
        warnings.warn(f"corrupted cache file {path.name}; regenerating", CacheWarning,
                      stacklevel=3)
        return None
    return data


def _import(path, data):
    """A module made from ``data`` (already checked), with ``__file__`` = ``path`` so
    numba keeps its compiled code beside it; numba's files are checked first."""
    _trust_numba(path)
    name = f"derivekit_kernels.{path.stem}"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module
    # the checked bytes themselves are compiled: reading the path again (or a .pyc
    # beside it, as importlib would) could run something else
    exec(compile(data, str(path), "exec"), module.__dict__)  # noqa: S102 - generated, checked
    return module


def _remove(path):
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


def _trust_numba(path):
    """Make numba's folder beside ``path`` safe to read: created private, or deleted if
    it is not the user's own; every file of this module's in it that is not the user's
    own plain file is deleted (numba would unpickle it)."""
    from derive.errors import InputError

    cache_dir = Path(path).parent / "__pycache__"
    try:
        st = os.lstat(cache_dir)
        if not (stat.S_ISDIR(st.st_mode) and _owned_private(st)):
            warnings.warn(f"untrusted numba cache folder {cache_dir} (owner uid {st.st_uid}, "
                          f"mode {stat.S_IMODE(st.st_mode):04o}); deleting it", CacheWarning,
                          stacklevel=4)
            _remove(cache_dir)
        cache_dir.mkdir(mode=0o700, exist_ok=True)
    except FileNotFoundError:
        cache_dir.mkdir(mode=0o700, exist_ok=True)
    except OSError as e:
        raise InputError(f"numba's cache folder is not the user's own and cannot be removed "
                         f"({e.strerror or e}); delete it", where=str(cache_dir)) from None
    for f in glob.glob(str(cache_dir / f"{Path(path).stem}.*")):
        st = os.lstat(f)
        if not (stat.S_ISREG(st.st_mode) and _owned_private(st)):
            warnings.warn(f"untrusted numba cache file {os.path.basename(f)}; deleting it",
                          CacheWarning, stacklevel=4)
            _remove(f)


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
        failure = exc
    path = Path(module.__file__)
    warnings.warn(f"corrupted numba cache for {path.name}; recompiling", CacheWarning,
                  stacklevel=2)
    _purge_numba(path)
    data = _trusted_module(path)
    if data is None:  # the module file itself went away or was changed meanwhile
        raise failure
    module = _import(path, data)
    return getattr(module, name)(*args), module
