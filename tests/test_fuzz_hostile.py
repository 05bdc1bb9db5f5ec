"""Hostile text through every reader, in-process and through the command line.

Payloads that would run a command or open a file (aimed at a sentinel file), costly but
legal mathematics, TeX that reads or writes files, YAML tags, bombs and deep nesting,
inside random wrappers (tests/fuzzgen_hostile.py). Every reader must answer or refuse in
one line within 10 s, the sentinel must never appear, and no dangerous TeX control
sequence may reach a rendered document.
"""
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fuzzgen as fg
import fuzzgen_hostile as fh


@pytest.mark.parametrize("reader", list(fh.READERS))
@settings(max_examples=fg.examples(10))
@given(data=st.data())
def test_hostile_text_is_answered_or_refused_and_nothing_runs(reader, data):
    fg.expect_ok(fh.check_hostile(data.draw(fg.drawn(fh.hostile_case, reader))))


def _needs(case):
    if "PDF" in case.name and not (shutil.which("pdflatex") and shutil.which("pdftotext")):
        return pytest.mark.skip(reason="needs pdflatex and pdftotext")
    return pytest.mark.pdf if "PDF" in case.name else ()


@pytest.mark.parametrize("case", [pytest.param(c, marks=_needs(c), id=c.name)
                                  for c in fh.cli_cases()])
def test_the_command_line_answers_or_refuses_hostile_input_in_one_line(case):
    fg.expect_ok(fh.check_cli(case))
