"""``python -m grader PATH``: see :mod:`grader.cli`."""
import sys

from grader.cli import main

sys.exit(main())
