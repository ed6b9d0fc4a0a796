"""Loads the grader's pytest plugin (:mod:`grader.plugin`) for ``pytest tests/grading``.

Grading runs of ``python -m grader`` load the plugin themselves and read no conftest.
"""
from grader.plugin import (nb, _grader_lib, pytest_addoption, pytest_collection_modifyitems,  # noqa: F401
                           pytest_configure, pytest_ignore_collect, pytest_runtest_makereport,
                           pytest_sessionfinish)
