"""The grader inside a Gradescope autograder container: one submission -> results.json.

Gradescope runs ``/autograder/run_autograder`` with the student's files in
``/autograder/submission/`` and reads ``/autograder/results/results.json``. With derivekit
installed in the image and the exam file beside the script, ``run_autograder`` is::

    #!/bin/sh
    python -m derive.exam.autograder /autograder/source/midterm.yaml \\
        /autograder/submission /autograder/results/results.json

The student is the one the file names (``student:``), or the file's stem. The grading
is :func:`derive.exam.grading.grade_text`'s, so the container and ``derivekit grade`` give
the same scores. A folder with no answer file, or several, is results.json scoring 0 with
the reason; only a bad exam file (the instructor's) exits non-zero.
"""
from __future__ import annotations

import json
import os
import sys

from derive.errors import DeriveError
from derive.exam.grading import MAX_BYTES, grade_text
from derive.exam.marks import replace_atomically

SUFFIXES = (".yaml", ".yml", ".csv")


def results(exam, folder):
    """The results.json content for the one answer file in ``folder``."""
    try:
        names = sorted(f for f in os.listdir(folder) if f.lower().endswith(SUFFIXES))
    except OSError as exc:
        names, why = [], f"cannot list the submission ({exc.strerror})"
    else:
        why = f"found {len(names)} answer files ({', '.join(names[:5])}); submit one" \
            if len(names) > 1 else "no answer file (.yaml, .yml or .csv) was submitted"
    if len(names) != 1:
        total = float(sum(p.points for p in exam.problems))
        return {"score": 0.0, "output": why, "visibility": "visible",
                "tests": [{"name": "Submission readable", "score": 0.0, "max_score": total,
                           "status": "failed", "output": why, "visibility": "visible"}]}
    path = os.path.join(folder, names[0])
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError:
        data = None
    return grade_text(exam, names[0], data).gradescope()


def main(argv=None):
    """``python -m derive.exam.autograder EXAM SUBMISSION_DIR RESULTS_JSON``."""
    from derive.exam import load_exam

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3:
        print("usage: python -m derive.exam.autograder EXAM.yaml SUBMISSION_DIR "
              "RESULTS.json", file=sys.stderr)
        return 2
    try:
        exam = load_exam(argv[0])
    except DeriveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data = results(exam, argv[1])
    replace_atomically(argv[2], (json.dumps(data, indent=2, ensure_ascii=False) + "\n")
                       .encode("utf-8"))
    print(data["output"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
