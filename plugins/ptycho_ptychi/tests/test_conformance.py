"""`lsqml`, `epie` and `rpie` honour the iterative generator contract (the ptycho_core.testing conformance
kit): complete spec, registration without torch or pty-chi, the object on the scan's grid, one loss
per iteration, an object that explains the data, the same seed gives the same object, a start at
the truth stays there (warm start, which `ptycho compare --refine` uses)."""

import os

import pytest

if os.environ.get("CI") != "true":
    pytest.importorskip("ptychi")

from ptycho_core.testing import IterativeConformance  # noqa: E402


class TestLsqmlConformance(IterativeConformance):
    generator = "ptycho-ptychi:lsqml"
    options = {"iterations": 10}


class TestEpieConformance(IterativeConformance):
    generator = "ptycho-ptychi:epie"
    options = {"iterations": 10}


class TestRpieConformance(IterativeConformance):
    generator = "ptycho-ptychi:rpie"
    options = {"iterations": 10}
