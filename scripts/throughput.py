"""How many notebooks an hour this machine grades (README, A class beyond one machine).

Copies every solution notebook ``--copies`` times into a temporary class folder (each chapter
equally often, so the mix is the course's), grades the folder with ``python -m grader`` as an
instructor would (sandboxed, ``--jobs``, default all cores; ``--scheduler`` to time a dask
pool instead), and prints the wall time, notebooks per hour, and the load average before and
after (other work on the machine slows grading down: say it with the figure).

Usage: ``.venv/bin/python scripts/throughput.py [--copies 2] [--jobs N] [--scheduler ADDR]``
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=1, help="copies of each solution (default 1)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--scheduler", help="a dask scheduler to grade on instead")
    args = parser.parse_args(argv)
    solutions = sorted((REPO / "solutions").glob("[0-9][0-9]_*.ipynb"))
    with tempfile.TemporaryDirectory(prefix="minigrad-throughput-") as tmp:
        folder = Path(tmp) / "class"
        for k in range(args.copies):
            (folder / f"learner{k:03d}").mkdir(parents=True)
            for nb in solutions:
                shutil.copy(nb, folder / f"learner{k:03d}" / nb.name)
        count = len(solutions) * args.copies
        cmd = [sys.executable, "-m", "grader", str(folder), "--json", str(Path(tmp) / "out.json"),
               *(["--scheduler", args.scheduler] if args.scheduler else ["--jobs", str(args.jobs)])]
        load_before = os.getloadavg()
        start = time.monotonic()
        run = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        seconds = time.monotonic() - start
        load_after = os.getloadavg()
        results = json.loads((Path(tmp) / "out.json").read_text())
    full = sum(1 for r in results if not r.get("error") and r["score"] == r["max_score"])
    print(f"graded {count} notebooks ({full} with full marks, exit code {run.returncode}) "
          f"in {seconds:.0f} s with {'the pool at ' + args.scheduler if args.scheduler else f'--jobs {args.jobs}'} "
          f"on {os.cpu_count()} cores: {count / seconds * 3600:.0f} notebooks an hour")
    print(f"load average (1, 5, 15 min) before {load_before[0]:.1f} {load_before[1]:.1f} "
          f"{load_before[2]:.1f}, after {load_after[0]:.1f} {load_after[1]:.1f} {load_after[2]:.1f}")
    if full != count:
        print(run.stderr[-2000:], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
