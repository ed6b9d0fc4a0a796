"""Grading a class over a pool of machines, with ``dask.distributed`` as the engine.

Grading is one notebook in, one result out, so a pool needs no scheduler of ours: the machine
that runs ``python -m grader FOLDER --scheduler tcp://HOST:8786`` (the coordinator) reads every
notebook (:func:`grader.grading.read_all`, as a local run does), sends each one's code cells to
the dask scheduler as one task, and writes the outputs. A worker grades a task with the code
path of a local run, :func:`grader.grading.grade_all` on that one notebook: its own copies of
the graded tests, ``grader`` and ``minigrad``, one ``pytest`` process, the kernel in the
bubblewrap sandbox under the coordinator's limits; the result dict is the same.

What keeps a pool honest:

- every worker must run the coordinator's grader: a task carries the digest of
  ``tests/grading``, ``grader`` and ``minigrad`` (:func:`code_digest`), and a worker whose
  files differ grades nothing (that notebook's error names the worker);
- every worker must sandbox as the coordinator asked: one where ``bwrap`` cannot run gives
  that notebook an error, never an unsandboxed grade; what a worker's machine does not enforce
  (control groups, ...) is printed once per worker;
- a failure is the notebook's, never the run's: a task that raises, a worker that dies (dask
  retries it elsewhere, then gives up), a scheduler that cannot be reached or has no worker,
  all become the notebooks' errors, and every output is still written.

dask's scheduler runs whatever its clients send: keep it on a private network (or TLS), as
dask's own documentation says.
"""
import hashlib
import os
import socket
import sys

from grader import grading, notebooks, sandbox
from grader.grading import describe, fingerprint
from grader.reports import result_for

__all__ = ["code_digest", "grade_on_worker", "grade_all", "CONNECT_TIMEOUT", "WORKER_WAIT"]

#: seconds to reach the scheduler
CONNECT_TIMEOUT = 30
#: seconds to wait for a first worker to join the scheduler
WORKER_WAIT = 120


def code_digest():
    """sha256 of every file of the graded tests, ``grader`` and ``minigrad`` by its path
    relative to the repository: equal on two machines when they grade with the same code."""
    import minigrad
    roots = [grading.GRADED_TESTS, grading.REPO / "grader", os.path.dirname(minigrad.__file__)]
    digest = hashlib.sha256()
    for path, value in sorted(fingerprint(roots).items()):
        rel = os.path.relpath(path, grading.REPO)
        digest.update(f"{rel}\0{value}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def grade_on_worker(submission, digest, limits, no_sandbox):
    """Grade one notebook on this worker: ``(result, void, note)``.

    ``submission`` is :meth:`grader.notebooks.Submission.as_json`; ``digest`` the coordinator's
    :func:`code_digest`; ``limits`` and ``no_sandbox`` as ``python -m grader`` takes them.
    ``void`` lists the grader's files that changed while grading (as a local run reports
    them); ``note`` is what this machine does not enforce, or None."""
    import types
    host = socket.gethostname()
    sub = notebooks.Submission.from_json(submission)
    mine = code_digest()
    if mine != digest:
        return result_for(sub.path, sub.chapter, error=(
            f"not graded: the worker on {host} runs other grader code than the coordinator "
            f"(digest {mine[:12]} against {digest[:12]}): install the same version there")), [], None
    note = None
    if not no_sandbox:
        try:
            sandbox.check()
        except sandbox.SandboxUnavailable as exc:
            return result_for(sub.path, sub.chapter, error=(
                f"not graded: the worker on {host} cannot sandbox ({exc})")), [], None
        warning = sandbox.not_enforced()
        note = f"worker on {host}: {warning}" if warning else None
    args = types.SimpleNamespace(limits=limits, no_sandbox=no_sandbox, jobs=1)
    known = grading.chapters()
    results, void, interrupted = grading.grade_all([(sub.path, sub)], known, args)
    return results[sub.path], void, note


def _say(text):
    try:
        print(text, file=sys.stderr)
    except (OSError, ValueError):
        pass


def _errors(todo, error):
    return {p: result_for(p, s.chapter, error=error) for p, s in todo}


def grade_all(todo, known, args, task=grade_on_worker):
    """Like :func:`grader.grading.grade_all` (``(results, void, interrupted)``, a result for
    every ``(path, submission)`` of ``todo``), each notebook graded by a worker of the dask
    scheduler at ``args.scheduler``. ``task`` is what a worker runs (tests replace it)."""
    if not todo:
        return {}, [], False
    try:
        from distributed import Client
    except ImportError:
        return _errors(todo, "not graded: --scheduler needs the dask and distributed "
                             "packages (pip install -r requirements.txt)"), [], False
    address = args.scheduler
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except Exception as exc:
        _say(f"grade: cannot reach the dask scheduler at {address}: {describe(exc)}")
        return _errors(todo, f"not graded: the dask scheduler at {address} could not be "
                             f"reached ({describe(exc)})"), [], False
    results, void, notes, interrupted = {}, [], set(), False
    try:
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT)
        except Exception:
            return _errors(todo, f"not graded: no dask worker joined the scheduler at "
                                 f"{address} within {WORKER_WAIT} s"), [], False
        from distributed import as_completed
        digest = code_digest()
        futures, by_key = [], {}
        for path, submission in todo:
            future = client.submit(task, submission.as_json(), digest, args.limits,
                                   args.no_sandbox, pure=False)
            futures.append(future)
            by_key[future.key] = (path, submission)
        try:
            for future in as_completed(futures, loop=client.loop):
                path, submission = by_key[future.key]
                results[path] = _collect(future, path, submission, void, notes)
        except KeyboardInterrupt:
            interrupted = True
            client.cancel(futures)
    except KeyboardInterrupt:           # while waiting for workers or sending the tasks
        interrupted = True
    except Exception as exc:            # the pool failed: the notebooks not graded say why
        _say(f"grade: the dask pool at {address} failed: {describe(exc)}")
        for path, submission in todo:
            results.setdefault(path, result_for(path, submission.chapter, error=(
                f"not graded: the dask pool at {address} failed ({describe(exc)})")))
    finally:
        try:
            client.close(timeout=10)
        except Exception:
            pass
    for note in sorted(notes):
        _say(f"grade: WARNING: {note}")
    for path, submission in todo:
        if path not in results:
            results[path] = result_for(path, submission.chapter,
                                       error="not graded: the run was interrupted")
    return results, void, interrupted


def _collect(future, path, submission, void, notes):
    """The result of one finished task; a task that failed is its notebook's error."""
    try:
        result, task_void, note = future.result()
    except Exception as exc:            # KilledWorker, an exception raised on the worker, ...
        name = type(exc).__name__
        why = ("its worker died while grading it, on every try" if name == "KilledWorker"
               else f"grading failed on the worker ({describe(exc)})")
        return result_for(path, submission.chapter, error=f"not graded: {why}; grade it again")
    if not (isinstance(result, dict) and isinstance(result.get("exercises"), list)
            and isinstance(task_void, list)):
        return result_for(path, submission.chapter,
                          error="not graded: the worker sent back something that is not a result")
    if note:
        notes.add(note)
    if task_void:
        void.extend(v for v in task_void if v not in void)
    # the worker read the coordinator's path from the task: the result names it as a local
    # run does
    if result.get("notebook") != str(path):
        result = dict(result, notebook=str(path))
    return result
