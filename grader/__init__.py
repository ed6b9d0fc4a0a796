"""The grader of the course's exercise notebooks.

A learner's notebook runs in its own Jupyter kernel, inside a bubblewrap sandbox
(:mod:`grader.sandbox`), and the graded tests of ``tests/grading`` talk to it with plain
data (:mod:`grader.kernel`, :mod:`grader.codec`). The modules:

- :mod:`grader.settings`: every limit, timeout and pytest setting, in one place;
- :mod:`grader.codec`: the plain-data codec (JSON with tagged ``np.save`` arrays);
- :mod:`grader.bridge`: the code that runs in the kernel and answers requests;
- :mod:`grader.sandbox`: the ``bwrap`` command line and the resource limits of a kernel;
- :mod:`grader.cgroups`: control groups for a whole sandbox (memory, processes, CPU);
- :mod:`grader.relay`: the relay to a kernel's sockets that caps what it sends;
- :mod:`grader.standin`: what a graded kernel imports in place of an autodiff package;
- :mod:`grader.kernel`: :class:`~grader.kernel.Notebook`, one notebook in one kernel;
- :mod:`grader.plugin`: the pytest plugin (the ``exercise`` marker, the ``nb`` fixture,
  the per-test report);
- :mod:`grader.gradetools`: comparisons shared by the graded tests;
- :mod:`grader.notebooks`: finding submitted notebooks (special files and links out of the
  folder skipped) and reading each one once;
- :mod:`grader.cells`: which exercise each cell belongs to, and a failed cell in words;
- :mod:`grader.roster`: the class roster (``--roster``) and which student a file is;
- :mod:`grader.duplicates`: byte-identical submissions and submissions with the same code;
- :mod:`grader.identity`: the roster's student, the notes and the flags added to results;
- :mod:`grader.selfcheck`: a student's self-check without the graded tests or a sandbox;
- :mod:`grader.reports`: a grading process's report, checked, and the scores it gives;
- :mod:`grader.grading`: grading a class, each notebook in its own process, every failure
  kept to its notebook;
- :mod:`grader.outputs`: the score table, the JSON and the CSV, safe whatever text they hold;
- :mod:`grader.sections` and :mod:`grader.feedback`: the chapter section of each exercise, and
  a self-contained HTML feedback page per learner (``--feedback DIR``);
- :mod:`grader.gradescope`: Gradescope's ``run_autograder`` (``make gradescope``);
- :mod:`grader.distributed`: grading on the workers of a dask.distributed pool (``--scheduler``);
- :mod:`grader.cli`: ``python -m grader`` / ``scripts/grade.py`` / ``make grade``.
"""
__all__ = []
