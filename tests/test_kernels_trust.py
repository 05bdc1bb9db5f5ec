"""The kernel cache runs only what the user's own derivekit wrote: modules and numba's
pickled index files are trusted only from the user's private folders, and a module's
checksum covers every byte that is compiled (kernels/cache.py)."""
import hashlib
import os
import pickle
import py_compile
import shutil
import stat
import tempfile
import warnings

import numpy as np
import pytest

import derive as dv
import kernels
from kernels import cache


def net():
    return dv.Sequential(dv.Linear(3, 2), loss=dv.SoftmaxCrossEntropy())


def trains(model):
    """One epoch runs and gives the loss of the initial weights (a real number)."""
    X, y = np.ones((4, 3)), np.array([0, 1, 0, 1])
    loss, _ = model.run_epoch(X, y, np.arange(4), [0.1], 4)
    return np.isfinite(loss) and loss > 0


@pytest.fixture(scope="module")
def genuine(kernel_cache):
    """A module compiled in a private folder: its file name, source and numba files."""
    model = kernels.compile(net(), dtype="float64")
    assert trains(model)
    path = model.module.__file__
    numba_files = sorted(os.listdir(os.path.join(os.path.dirname(path), "__pycache__")))
    with open(path, "rb") as f:
        return os.path.basename(path), f.read(), numba_files


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """No folder chosen yet in this process; temporary folders under tmp_path/tmp."""
    shared = tmp_path / "tmp"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # like /tmp: anyone may create folders in it
    monkeypatch.setattr(cache, "_checked", {})
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    return shared


class Plant:
    """Unpickling this creates the sentinel file (what a planted numba index would do)."""

    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        return open, (str(self.sentinel), "w")


def stamped(body):
    """The cache's file format: a line with the SHA-256 of the bytes that follow."""
    return b"# derivekit-sha256: " + hashlib.sha256(body).hexdigest().encode() + b"\n" + body


def plant(folder, genuine, sentinel):
    """A module with a valid checksum line that creates ``sentinel`` when imported, and
    numba index/data files under the genuine names that create it when unpickled."""
    name, text, numba_files = genuine
    folder.mkdir(exist_ok=True)
    payload = f"import pathlib\npathlib.Path({str(sentinel)!r}).write_text('ran')\n".encode()
    body = text.partition(b"\n")[2]
    (folder / name).write_bytes(stamped(payload + body))
    (folder / "__pycache__").mkdir(exist_ok=True)
    for f in numba_files:
        (folder / "__pycache__" / f).write_bytes(pickle.dumps(Plant(sentinel)))
    return folder / name


def unwritable_wanted(monkeypatch, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("DERIVEKIT_CACHE", str(blocked / "sub"))


def compile_warned(match):
    with pytest.warns(cache.CacheWarning, match=match):
        return kernels.compile(net(), dtype="float64")


def test_planted_module_in_a_world_writable_fallback_is_not_run(genuine, fresh, tmp_path,
                                                                 monkeypatch):
    unwritable_wanted(monkeypatch, tmp_path)
    sentinel = tmp_path / "ran"
    squatted = fresh / f"derivekit-cache-{os.getuid()}"
    planted = plant(squatted, genuine, sentinel)
    os.chmod(squatted, 0o777)
    before = planted.read_bytes()
    model = compile_warned(r"can be written by other users \(mode 0777\).*new private folder")
    assert trains(model) and not sentinel.exists()
    where = os.path.dirname(model.module.__file__)
    assert where != str(squatted) and stat.S_IMODE(os.stat(where).st_mode) == 0o700
    assert planted.read_bytes() == before  # another user's folder is left alone


def test_planted_module_in_a_foreign_owned_fallback_is_not_run(genuine, fresh, tmp_path,
                                                                monkeypatch):
    if os.getuid() != 0:
        pytest.skip("making a folder another user's needs root (chown)")
    unwritable_wanted(monkeypatch, tmp_path)
    sentinel = tmp_path / "ran"
    squatted = fresh / f"derivekit-cache-{os.getuid()}"
    plant(squatted, genuine, sentinel)
    for root, dirs, files in os.walk(squatted):
        for p in [root] + [os.path.join(root, f) for f in files]:
            os.chown(p, 4242, 4242)  # private (0755 / 0644), but not ours
    model = compile_warned(r"belongs to another user \(uid 4242\).*new private folder")
    assert trains(model) and not sentinel.exists()
    assert os.path.dirname(model.module.__file__) != str(squatted)


def test_a_symlinked_fallback_is_refused(genuine, fresh, tmp_path, monkeypatch):
    unwritable_wanted(monkeypatch, tmp_path)
    mine = tmp_path / "elsewhere"
    mine.mkdir(mode=0o700)
    os.symlink(mine, fresh / f"derivekit-cache-{os.getuid()}")
    model = compile_warned(r"is not a folder \(a symbolic link or a file\)")
    assert trains(model) and not os.listdir(mine)  # nothing written through the link


@pytest.mark.parametrize("mode", [0o775, 0o777])
def test_a_wanted_folder_others_can_write_is_not_used(genuine, fresh, tmp_path, monkeypatch,
                                                      mode):
    wanted = tmp_path / "team-cache"
    sentinel = tmp_path / "ran"
    plant(wanted, genuine, sentinel)
    os.chmod(wanted, mode)
    monkeypatch.setenv("DERIVEKIT_CACHE", str(wanted))
    model = compile_warned(rf"{wanted} can be written by other users \(mode 0{mode:o}\)")
    assert trains(model) and not sentinel.exists()
    assert os.path.dirname(model.module.__file__) == str(fresh / f"derivekit-cache-"
                                                               f"{os.getuid()}")


def test_new_folders_and_files_are_private(fresh, tmp_path, monkeypatch):
    wanted = tmp_path / "new" / "cache"
    monkeypatch.setenv("DERIVEKIT_CACHE", str(wanted))
    with warnings.catch_warnings():
        warnings.simplefilter("error", cache.CacheWarning)
        model = kernels.compile(net(), dtype="float64")
        assert trains(model)
    assert stat.S_IMODE(os.stat(wanted).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(wanted / "__pycache__").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(model.module.__file__).st_mode) == 0o600


def private_cache(genuine, kernel_cache, tmp_path, monkeypatch):
    """A private cache folder holding the genuine module and its numba files (copied
    with their time stamps, so numba's index stays valid and nothing recompiles)."""
    folder = tmp_path / "mine"
    shutil.copytree(kernel_cache, folder)
    monkeypatch.setenv("DERIVEKIT_CACHE", str(folder))
    # the file this process's next compile reads (its key is taken now, not when the
    # module fixture ran, so earlier tests in the run cannot make it another file)
    path = kernels.compile(net(), dtype="float64").module.__file__
    return folder, type(folder)(path)


def test_numba_files_others_can_write_are_deleted_not_unpickled(genuine, fresh, kernel_cache,
                                                                 tmp_path, monkeypatch):
    folder, _ = private_cache(genuine, kernel_cache, tmp_path, monkeypatch)
    sentinel = tmp_path / "ran"
    index = [f for f in genuine[2] if f.endswith(".nbi")]
    assert index
    for f in genuine[2]:
        path = folder / "__pycache__" / f
        path.write_bytes(pickle.dumps(Plant(sentinel)))
        os.chmod(path, 0o666)
    model = compile_warned(r"untrusted numba cache file dk_.*\.nb[ic]; deleting it")
    assert trains(model) and not sentinel.exists()
    # a numba folder that others can write is replaced by a private one
    os.chmod(folder / "__pycache__", 0o777)
    model = compile_warned(r"untrusted numba cache folder .*mode 0777.*deleting it")
    assert trains(model) and not sentinel.exists()
    assert stat.S_IMODE(os.stat(folder / "__pycache__").st_mode) == 0o700


@pytest.mark.parametrize("edit", ["append", "insert", "crlf", "truncate"])
def test_a_module_edited_after_its_header_is_regenerated(genuine, fresh, kernel_cache, tmp_path,
                                                         monkeypatch, edit):
    _, path = private_cache(genuine, kernel_cache, tmp_path, monkeypatch)
    sentinel = tmp_path / "ran"
    text = path.read_bytes()
    head, _, body = text.partition(b"\n")
    line = f"open({str(sentinel)!r}, 'w')\n".encode()
    edited = {"append": text + line, "insert": head + b"\n" + line + body,
              "crlf": head + b"\n" + body.replace(b"\n", b"\r\n"),
              "truncate": text[: len(text) // 2]}[edit]
    path.write_bytes(edited)
    assert not cache.intact(edited.decode(errors="replace"))
    model = compile_warned(r"corrupted cache file dk_")
    assert trains(model) and not sentinel.exists()
    regenerated = path.read_bytes()  # (index names may differ: they come from a counter)
    assert cache.intact(regenerated.decode()) and line not in regenerated
    assert b"\r" not in regenerated
    assert b"def epoch(" in regenerated


def test_what_runs_is_what_was_checked_not_a_pyc_beside_it(genuine, fresh, kernel_cache,
                                                           tmp_path, monkeypatch):
    _, path = private_cache(genuine, kernel_cache, tmp_path, monkeypatch)
    sentinel = tmp_path / "ran"
    # bytecode that creates the sentinel, stamped as the cached module's compiled form
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(sentinel)!r}, 'w')\n")
    pyc = py_compile.compile(str(evil), cfile=str(tmp_path / "evil.pyc"))
    import importlib.util

    st = os.stat(path)
    data = bytearray(open(pyc, "rb").read())
    data[8:12] = int(st.st_mtime).to_bytes(4, "little")
    data[12:16] = (st.st_size & 0xFFFFFFFF).to_bytes(4, "little")
    (path.parent / "__pycache__" / os.path.basename(importlib.util.cache_from_source(
        str(path)))).write_bytes(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error", cache.CacheWarning)
        model = kernels.compile(net(), dtype="float64")
    assert trains(model) and not sentinel.exists()


# -- text from a config file never becomes code -------------------------------------------
def payload(sentinel):
    return f"__import__('pathlib').Path({str(sentinel)!r}).write_text('ran')"


def test_a_layer_option_cannot_close_the_kernels_docstring(kernel_cache, tmp_path):
    from derive.errors import InputError
    from kernels.cli import build_net

    sentinel = tmp_path / "ran"
    escape = '"""\\n' + payload(sentinel).replace('"', '\\"') + '\\n"""'
    spec = 'linear(64, 10, bias="' + escape.replace('"', '\\"') + '")'
    with pytest.raises(InputError, match="option 'bias' of layer 'linear' is true or false"):
        kernels.compile(build_net({"layers": [spec], "loss": "cross_entropy"}))  # refused
    assert not sentinel.exists()
    # text that does reach a kernel's docstring (the title) is escaped there
    text = kernels.docstring_text('"""\n' + payload(sentinel) + '\n"""')
    namespace = {}
    exec(compile('"""' + text + '"""\nx = 1\n', "<kernel>", "exec"), namespace)  # noqa: S102
    assert not sentinel.exists() and namespace["x"] == 1


@pytest.mark.parametrize("option", ["elu(alpha={})", "leaky_relu(k={})", "batchnorm(10, eps={})",
                                    "batchnorm(10, momentum={})", "layernorm(10, eps={})"])
def test_layer_options_are_numbers_not_expressions(tmp_path, option):
    from derive.errors import InputError
    from kernels.cli import build_net

    sentinel = tmp_path / "ran"
    spec = option.format('"' + payload(sentinel).replace('"', '\\"') + '"')
    with pytest.raises(InputError, match=r"must be a number, got \"__import__"):
        build_net({"layers": ["linear(64, 10)", spec, "linear(10, 10)"]}).graph()
    assert not sentinel.exists()
    with pytest.raises(InputError, match=r"the hinge margin must be a number"):
        build_net({"layers": ["linear(64, 10)"],
                   "loss": f'hinge(margin="{payload(sentinel)}")'}).graph()
    assert not sentinel.exists()
    net = build_net({"layers": ["linear(64, 10)", option.format('"1/2"'), "linear(10, 10)"]})
    assert net.graph() is not None  # a number in a string is still read (without eval)


def test_dimension_names_that_are_not_names_are_refused(tmp_path):
    from derive.errors import InputError

    with pytest.raises(InputError, match=r"dimension name \"q = 1\\n    open.* is not a valid"):
        dv.Linear("q = 1\n    open('x', 'w')\n    d", 3)
    with pytest.raises(InputError, match=r"dimension name 'lambda' is not a valid name"):
        dv.Linear("lambda", 3)
    assert str(dv.Linear("d", 3).in_features) == "d"
