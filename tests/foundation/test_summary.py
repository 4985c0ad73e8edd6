"""The test summary says, per class, how many tests ran and how many were skipped, and why.

A test with several class markers counts toward each: a skipped hub test that is also a
browser and a Postgres test is one skipped test of each class, beside the ones that ran.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"
TESTS = """
import pytest

@pytest.mark.postgres
def test_pg_one():
    pass

@pytest.mark.postgres
def test_pg_two():
    pass

@pytest.mark.browser
@pytest.mark.postgres
def test_browser():
    pass

@pytest.mark.hub
@pytest.mark.browser
@pytest.mark.postgres
def test_hub():
    pytest.skip("no hub on this machine")

def test_plain():
    pass
"""


def test_summary_counts_what_ran_and_what_was_skipped_per_class(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST.read_text(encoding="utf-8"))
    pytester.makepyfile(test_classes=TESTS)
    pytester.makeini("[pytest]\nmarkers =\n  postgres\n  browser\n  hub\n  notebooks\n  stack\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, skipped=1)
    lines = [line for line in result.outlines if line.startswith("test class ")]
    assert lines == [
        "test class postgres: 3 ran, 1 skipped (Skipped: no hub on this machine)",
        "test class browser: 1 ran, 1 skipped (Skipped: no hub on this machine)",
        "test class hub: 0 ran, 1 skipped (Skipped: no hub on this machine)",
    ]
    required = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "not hub")
    assert [line for line in required.outlines if line.startswith("test class ")] == [
        "test class postgres: 3 ran, 0 skipped",
        "test class browser: 1 ran, 0 skipped",
    ]
