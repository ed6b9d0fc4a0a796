"""Who handed in each graded notebook: the roster's student, the chapter's source, and the
identical submissions, added to the results (the keys are listed in :mod:`grader.cli`).

Each result gains ``student_id`` and ``student_name`` (None without a roster, or when no
single roster row matches the file: :mod:`grader.roster`), ``messages`` (the roster's notes,
and where the chapter came from when the metadata named none), and ``identical_to`` /
``same_code_as`` (:mod:`grader.duplicates`). Nothing here changes a score.
"""
from pathlib import Path

from grader import duplicates, roster as rosters

__all__ = ["annotate", "relative_path"]


def relative_path(path, target):
    """``path`` below the graded folder ``target`` (for a single notebook: its file name)."""
    path, target = Path(path), Path(target)
    if target.is_dir():
        try:
            return path.relative_to(target).as_posix()
        except ValueError:
            return path.as_posix()
    return path.name


def _chapter_note(submission, chapter_option):
    if submission is None or submission.metadata_chapter is not None:
        return []
    if chapter_option is not None:
        return [f"chapter {chapter_option} from --chapter (the notebook's metadata names none)"]
    return [f"chapter {submission.chapter} from the file name (the notebook's metadata "
            "names none)"]


def annotate(results, read, target, roster=None, chapter_option=None, templates=None):
    """``(results, missing)``: every result (a list, in order) with the keys of the module
    docstring added, and the roster's students no file matched (none when ``target`` is one
    notebook). ``read`` is ``{path:
    Submission}`` of every file that could be read, ``target`` the graded file or folder."""
    flags = duplicates.find_identical(list(read.values()), templates)
    relative = {r["notebook"]: relative_path(r["notebook"], target) for r in results}
    assigned, missing = rosters.assign(roster, list(relative.values())) if roster \
        else ({}, [])
    if not Path(target).is_dir():       # one notebook graded: the others are not missing
        missing = []
    out = []
    for r in results:
        student, notes = assigned.get(relative[r["notebook"]], (None, []))
        submission = read.get(Path(r["notebook"]))
        twins = flags.get(r["notebook"], {})
        out.append({**r, "student_id": student.student_id if student else None,
                    "student_name": student.name if student else None,
                    "status": r.get("status") or ("error" if r.get("error") else "graded"),
                    "messages": [*notes, *_chapter_note(submission, chapter_option)],
                    "identical_to": [relative_path(p, target) for p in
                                     twins.get("identical_to", [])],
                    "same_code_as": [relative_path(p, target) for p in
                                     twins.get("same_code_as", [])]})
    return out, missing
