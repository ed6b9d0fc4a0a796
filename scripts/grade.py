#!/usr/bin/env python
"""Grade exercise notebooks: ``python scripts/grade.py PATH``, the same as
``python -m grader PATH`` (see :mod:`grader.cli`, or ``--help``)."""
import sys

from grader.cli import main

if __name__ == "__main__":
    sys.exit(main())
