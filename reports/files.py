"""Getting documents onto disk: pdflatex in a temporary directory, atomic writes.

An output file either appears complete or not at all: it is written under a temporary
name in the destination's directory and renamed over the destination (``os.replace`` is
atomic on one file system), so a failed compile or a full disk leaves no half a file.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

from derive.errors import DeriveError, InputError, UnsupportedError

PDFLATEX_TIMEOUT = 120  # seconds per run; a document of ours compiles in about one
MAX_RUNS = 3  # longtable settles its column widths on the second run, rarely a third
# The Debian packages the documents need: pdflatex, geometry, amsmath, array and longtable
# are in texlive-latex-base (amssymb in texlive-base, which it pulls in), booktabs in
# texlive-latex-recommended, TikZ and its arrows.meta library in texlive-pictures.
TEX_PACKAGES = ("texlive-latex-base texlive-latex-recommended texlive-latex-extra "
                "texlive-pictures")
_RERUN = re.compile(r"Rerun (LaTeX|to get)|Table widths have changed")


#: what an image file beside the document may be called (the names reports gives them)
_IMAGE_NAME = re.compile(r"[A-Za-z0-9_-]+\.png")


def pdf_bytes(source, files=None):
    """Compile LaTeX ``source`` with pdflatex; the PDF as bytes.

    ``files`` maps the names of the images the source includes (``figure-1.png``) to their
    bytes; they are written beside the source in the temporary directory.

    Raises
    ------
    UnsupportedError
        pdflatex is not installed.
    DeriveError
        pdflatex failed (the message quotes its first error and line).
    """
    exe = shutil.which("pdflatex")
    if exe is None:
        raise UnsupportedError(f"pdflatex not found: install {TEX_PACKAGES} (or write .tex)")
    with tempfile.TemporaryDirectory(prefix="derivekit-tex-") as tmp:
        with open(os.path.join(tmp, "doc.tex"), "w", encoding="utf-8") as fh:
            fh.write(source)
        for name, data in (files or {}).items():
            if not _IMAGE_NAME.fullmatch(name) or name.startswith("doc."):
                raise DeriveError(f"refusing to write the image file {name!r:.60}")
            with open(os.path.join(tmp, name), "wb") as fh:
                fh.write(data)
        for _ in range(MAX_RUNS):
            log = _run(exe, tmp)
            if not _RERUN.search(log):
                break
        with open(os.path.join(tmp, "doc.pdf"), "rb") as fh:
            return fh.read()


def tex_environment(tmp):
    """The environment pdflatex runs in: paranoid about files.

    ``openin_any=p`` / ``openout_any=p`` make kpathsea refuse to read or write dotfiles,
    absolute paths and paths through ``..`` (outside ``TEXMFOUTPUT``, set to the
    temporary folder), so even a document that asks cannot read ``/etc/hostname``; shell
    escape is off on the command line as well.
    """
    env = {k: v for k, v in os.environ.items()
           if k not in ("TEXINPUTS", "TEXMFOUTPUT", "shell_escape", "shell_escape_commands")}
    env.update(openin_any="p", openout_any="p", TEXMFOUTPUT=tmp, shell_escape="f")
    return env


def _run(exe, tmp):
    """One pdflatex run in ``tmp``; its log (DeriveError on failure)."""
    cmd = [exe, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "doc.tex"]
    try:
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, stdin=subprocess.DEVNULL,
                              timeout=PDFLATEX_TIMEOUT, env=tex_environment(tmp))
    except subprocess.TimeoutExpired:
        raise DeriveError(f"pdflatex took longer than {PDFLATEX_TIMEOUT} s") from None
    log_path = os.path.join(tmp, "doc.log")
    log = ""
    if os.path.exists(log_path):
        with open(log_path, encoding="latin-1") as fh:
            log = fh.read()
    if proc.returncode != 0 or not os.path.exists(os.path.join(tmp, "doc.pdf")):
        raise DeriveError(f"pdflatex failed: {first_error(log)}")
    return log


def first_error(log):
    """The first ``! ...`` error of a TeX log and its ``l.N`` line, on one line."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("! "):
            where = next((x.strip() for x in lines[i + 1:i + 12] if x.startswith("l.")), "")
            return line[2:].strip() + (f" (at {where})" if where else "")
    return "no error message in the log"


def replace_atomically(path, data):
    """Write ``data`` (bytes) to ``path`` via a temporary file and a rename."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                                   suffix=".part")
    except OSError as exc:
        raise InputError(f"cannot write here ({exc.strerror})", where=path) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
