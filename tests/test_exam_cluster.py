"""derivekit grade on Dask: a real scheduler and two workers as separate processes on
127.0.0.1, one of them killed mid-run; every student's result must be present exactly
once and equal the in-process (workers=0) result. Also: an unreachable scheduler, reruns
that skip what is graded, and the per-worker variant cache against plain Exam.variant.

Every process a test starts is stopped in its fixture's teardown.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml

from derive.command_line import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIDTERM = os.path.join(ROOT, "examples", "exam", "midterm.yaml")
STUDENTS = [f"s{i:03d}" for i in range(1, 33)]     # 32 students
ALL = sorted(STUDENTS + ["unreadable"])  # unreadable.yaml is a record too (score 0, why)


def _submission(exam, sid, i):
    """A correct submission, with every third one wrong or missing a problem."""
    from derive.exam.numbers import text

    v = exam.variant(sid)
    answers = {p.number: {b.entry: text(b.answer) for b in p.blanks} for p in v.problems}
    if i % 3 == 1:
        answers[1]["adjoint t"] = "12345"
    elif i % 3 == 2:
        del answers[4]
    return yaml.safe_dump({"student": sid, "answers": answers})


@pytest.fixture(scope="module")
def submissions(tmp_path_factory):
    from derive.exam import load_exam

    folder = tmp_path_factory.mktemp("submissions")
    exam = load_exam(MIDTERM)
    for i, sid in enumerate(STUDENTS):
        (folder / f"{sid}.yaml").write_text(_submission(exam, sid, i), encoding="utf-8")
    (folder / "unreadable.yaml").write_text("answers: [not, a, mapping\n", encoding="utf-8")
    return str(folder)


@pytest.fixture(scope="module")
def reference(submissions, tmp_path_factory):
    """The in-process grading (no Dask): the result every other run must equal."""
    from derive.exam.run import grade_class

    out = str(tmp_path_factory.mktemp("reference"))
    run = grade_class(MIDTERM, submissions, out, workers=0, formats=("md",), progress=False)
    assert run.graded == len(ALL) and len(run.errors) == 1
    return out


def _tree(out):
    """``{student: {file name: bytes}}`` of a marks folder, and its scores.csv."""
    students = os.path.join(out, "students")
    tree = {s: {f: open(os.path.join(students, s, f), "rb").read()
                for f in sorted(os.listdir(os.path.join(students, s)))}
            for s in sorted(os.listdir(students))}
    with open(os.path.join(out, "scores.csv"), encoding="utf-8") as fh:
        return tree, fh.read()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dask_processes(tmp_path):
    """A ``dask scheduler`` and two ``dask worker`` processes (no nanny: killing one kills
    the worker itself), importing this checkout's derive. Yields (address, {worker
    address: Popen}); all are stopped at teardown."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs, workers = [], {}

    def start(args, log):
        with open(tmp_path / log, "wb") as fh:
            p = subprocess.Popen([sys.executable, "-m", *args], cwd=str(tmp_path), env=env,
                                 stdout=fh, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        procs.append(p)
        return p

    try:
        start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
               "--no-dashboard", "--no-show"], "scheduler.log")
        for k in range(2):
            wport = _free_port()
            p = start(["distributed.cli.dask_worker", address, "--host", "127.0.0.1",
                       "--worker-port", str(wport), "--nworkers", "1", "--nthreads", "1",
                       "--no-nanny", "--no-dashboard", "--name", f"w{k}"], f"worker{k}.log")
            workers[f"tcp://127.0.0.1:{wport}"] = p
        yield address, workers
    finally:
        for p in procs[::-1]:   # workers first (test processes: no state to keep)
            if p.poll() is None:
                p.kill() if p is not procs[0] else p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)


def test_a_worker_killed_mid_run_loses_no_student_and_grades_none_twice(
        dask_processes, submissions, reference, tmp_path):
    from distributed import Client

    from derive.exam.run import grade_class

    address, workers = dask_processes
    out = str(tmp_path / "marks")
    killed, seen = [], []
    with Client(address, timeout=30, set_as_default=False) as watch:
        watch.wait_for_workers(2, timeout=90)
        watch.run(lambda: __import__("derive.exam.cluster"))   # warm: imports, not grading

        def on_result(record):
            seen.append(record["student"])
            if killed:
                return
            busy = [w for w, keys in watch.processing().items() if keys and w in workers]
            if busy:  # a worker in the middle of a batch: kill it, no clean shutdown
                workers[busy[0]].send_signal(signal.SIGKILL)
                killed.append((busy[0], len(seen)))

        run = grade_class(MIDTERM, submissions, out, scheduler=address, batch=2,
                          formats=("md",), progress=False, on_result=on_result)
        assert killed, "no worker was busy while results arrived"
        assert killed[0][1] < len(STUDENTS) // 2, "the kill came too late to be mid-run"
        assert workers[killed[0][0]].wait(timeout=10) == -signal.SIGKILL
        assert len(watch.scheduler_info()["workers"]) == 1   # the scheduler saw it go

    # every student exactly once: one callback, one folder, one row each
    assert sorted(seen) == ALL
    assert run.graded == len(ALL) and run.workers == 2
    assert run.errors == [e for e in run.errors if e.startswith("unreadable.yaml")]
    got, scores = _tree(out)
    want, want_scores = _tree(reference)
    assert sorted(got) == ALL
    assert got == want                       # record.json, results.json, feedback.md: bytes
    assert scores == want_scores
    rows = [line.split(",")[0] for line in scores.splitlines()[1:]]
    assert sorted(rows) == ALL
    leftovers = [f for _, _, files in os.walk(out) for f in files if f.startswith(".")]
    assert leftovers == []                   # no half-written file


def test_an_unreachable_scheduler_is_one_line_and_loses_nothing(
        submissions, reference, tmp_path, capsys):
    import shutil

    out = tmp_path / "marks"
    shutil.copytree(reference, out)
    before = _tree(str(out))
    port = _free_port()  # nothing listens here
    start = time.monotonic()
    code = main(["grade", MIDTERM, submissions, "-o", str(out), "--force", "--quiet",
                 "--scheduler", f"tcp://127.0.0.1:{port}"])
    took = time.monotonic() - start
    err = capsys.readouterr().err
    assert code == 2 and took < 15
    assert err.count("\n") == 1
    assert err.startswith(f"derivekit grade: error: --scheduler: cannot reach the Dask "
                          f"scheduler at tcp://127.0.0.1:{port}: ")
    assert _tree(str(out)) == before


def test_not_a_scheduler_address_is_one_line(submissions, tmp_path, capsys):
    code = main(["grade", MIDTERM, submissions, "-o", str(tmp_path / "m"), "--quiet",
                 "--scheduler", "no-port-here"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "cannot reach the Dask scheduler" in err


def test_a_rerun_skips_the_graded_and_force_grades_again(submissions, reference, tmp_path,
                                                         capsys):
    import shutil

    out = tmp_path / "marks"
    shutil.copytree(reference, out)
    for sid in STUDENTS[:3]:          # three students not graded yet
        shutil.rmtree(out / "students" / sid)
    record = out / "students" / STUDENTS[5] / "record.json"
    stamp = record.stat().st_mtime_ns
    code = main(["grade", MIDTERM, submissions, "-o", str(out), "--workers", "0",
                 "--no-pdf", "--quiet", "--format", "json"])
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert code == 0        # unreadable.yaml was graded (score 0, its reason) already
    assert summary["graded"] == 3
    assert summary["skipped"] == len(ALL) - 3
    assert record.stat().st_mtime_ns == stamp    # a graded student was not touched
    assert _tree(str(out)) == _tree(reference)


def _first_draw(exam, sid, number):
    from derive.exam import sampling

    problem = exam.problems[number - 1]
    rng = sampling.generator(exam.seed, sid, number)
    while True:
        values = sampling.draw(problem.params, rng)
        if not sampling.parameters_fail(problem.constraints, values):
            return values


def test_the_variant_cache_gives_what_exam_variant_gives():
    """Two students whose draws of problem 3 (a CNN table with 48 settings) agree share
    one solved problem, and each one's grade equals the plain Exam's."""
    from derive.exam import load_exam
    from derive.exam.cluster import load_exam_text
    from derive.exam.grading import grade_text

    text = open(MIDTERM, encoding="utf-8").read()
    plain = load_exam(MIDTERM)
    cached = load_exam_text(text, "midterm.yaml", os.path.dirname(MIDTERM), key="test-cache")
    first, seen = None, {}
    for i in range(200):
        sid = f"c{i:03d}"
        key = json.dumps(_first_draw(plain, sid, 3), sort_keys=True)
        if key in seen:
            first = (seen[key], sid)
            break
        seen[key] = sid
    assert first, "no two ids with the same draw"
    for i, sid in enumerate(first):
        sub = _submission(plain, sid, i)
        assert grade_text(cached, f"{sid}.yaml", sub).to_dict() == \
            grade_text(plain, f"{sid}.yaml", sub).to_dict()
    assert cached.hits >= 1          # the second student's problem 3 came from the cache
    a, b = (cached.variant(sid) for sid in first)
    assert a.problems[2] is b.problems[2] and a.student_id != b.student_id


def test_a_local_cluster_grades_as_the_process_does(submissions, reference, tmp_path, capsys):
    """The default path: a LocalCluster of worker processes (one here), through the CLI."""
    import shutil

    part = tmp_path / "part"
    part.mkdir()
    for sid in STUDENTS[:4]:
        shutil.copy(os.path.join(submissions, f"{sid}.yaml"), part)
    out = tmp_path / "marks"
    code = main(["grade", MIDTERM, str(part), "-o", str(out), "--workers", "1", "--no-pdf",
                 "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0 and "graded 4 of 4 submissions on 1 Dask worker" in printed
    got, _ = _tree(str(out))
    want, _ = _tree(reference)
    assert got == {sid: want[sid] for sid in STUDENTS[:4]}


def test_two_files_for_one_student_grade_the_first_by_name(submissions, tmp_path):
    import shutil

    from derive.exam.run import grade_class

    part = tmp_path / "part"
    part.mkdir()
    shutil.copy(os.path.join(submissions, "s001.yaml"), part / "s001.yaml")
    shutil.copy(os.path.join(submissions, "s001.yaml"), part / "s001-again.yaml")
    run = grade_class(MIDTERM, str(part), str(tmp_path / "m"), workers=0, formats=("md",),
                      progress=False)
    assert run.graded == 1
    assert run.errors == ["s001.yaml: student s001 also submitted s001-again.yaml; the first "
                          "by name (s001-again.yaml) is graded"]
    record = json.loads((tmp_path / "m" / "students" / "s001" / "record.json").read_text())
    assert record["file"] == "s001-again.yaml"


def test_a_runaway_submission_on_a_worker_thread_is_stopped(monkeypatch, tmp_path):
    """Answer time limits use SIGALRM (main thread only); on a Dask worker's thread the
    watchdog stops a submission that runs too long and records it as 0 with the reason."""
    import threading

    import derive.exam.grading as grading
    from derive.exam import cluster

    def forever(*args, **kwargs):
        while True:
            pass

    monkeypatch.setattr(cluster, "SUBMISSION_SECONDS", 0.5)
    monkeypatch.setattr(grading, "grade_text", forever)
    text = open(MIDTERM, encoding="utf-8").read()
    out = []
    batch = [("s001.yaml", b"student: s001\nanswers: {}\n")]
    worker = threading.Thread(target=lambda: out.append(cluster.grade_batch(
        text, "midterm.yaml", str(tmp_path), None, batch, ("md",))))
    worker.start()
    worker.join(60)
    assert not worker.is_alive()
    record, files = out[0][0]
    assert (record["student"], record["score"]) == ("s001", 0.0)
    assert record["error"] == "s001.yaml: could not be graded within 0.5 s"
    assert "results.json" in files


POISON = '''
import os
from derive.exam import cluster

_real = cluster.grade_batch


def grade_batch(exam_text, exam_name, folder, roster, batch, formats):
    if any(name == "s003.yaml" for name, _ in batch):
        os._exit(1)     # the worker process dies, every time it is given this batch
    return _real(exam_text, exam_name, folder, roster, batch, formats)
'''


def test_a_batch_that_kills_every_worker_is_named_and_the_class_goes_on(
        submissions, reference, tmp_path, monkeypatch):
    import shutil

    from derive.exam import cluster
    from derive.exam.run import grade_class

    (tmp_path / "poison_batch.py").write_text(POISON, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))   # the spawned workers inherit sys.path
    import poison_batch

    monkeypatch.setattr(cluster, "grade_batch", poison_batch.grade_batch)
    part = tmp_path / "part"
    part.mkdir()
    for sid in STUDENTS[:6]:
        shutil.copy(os.path.join(submissions, f"{sid}.yaml"), part)
    out = tmp_path / "marks"
    run = grade_class(MIDTERM, str(part), str(out), workers=1, batch=2, formats=("md",),
                      progress=False)
    # the poisoned batch, and any batch Dask had queued on the same dying worker, is named
    # (each file once); every other file is graded as in the process; none is both
    named = [e.split(":")[0][:-len(".yaml")] for e in run.errors]
    assert {"s003", "s004"} <= set(named) and len(named) == len(set(named))
    assert all("not graded (the workers running it died)" in e for e in run.errors)
    got, _ = _tree(str(out))
    want, _ = _tree(reference)
    assert sorted(list(got) + named) == STUDENTS[:6]
    assert got == {sid: want[sid] for sid in got}
    assert run.graded == len(got) >= 2
