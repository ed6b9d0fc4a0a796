# One-command set-up: every target below creates .venv when it is missing and
# installs requirements.txt and minigrad into it. Nothing else is needed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: help venv book student test test-unit test-grader test-site lab exercises grade bench bench-sweep clean

help:
	@echo "make book       build the site into _build/html"
	@echo "make student    the student edition (no solutions): a copy of the repository in"
	@echo "                _build/student/repo and its site in _build/student/html"
	@echo "make test       run every test (unit, notebooks, grading, browser)"
	@echo "make test-unit  minigrad and the repository's checks (no notebook kernels, no browser)"
	@echo "make test-grader the grader on real, broken and hostile notebooks (in the sandbox)"
	@echo "make test-site  build the site and check it in a headless browser"
	@echo "make lab        open JupyterLab on the exercises"
	@echo "make exercises  regenerate exercises/ from solutions/"
	@echo "make grade NB=path/to/notebook.ipynb|folder/ [JSON=out.json] [CSV=out.csv] [GRADE_OPTS=...]"
	@echo "make bench      benchmark minigrad against numpy and autograd (and JAX, PyTorch if installed)"
	@echo "make bench-sweep  the same, plus the growth sweeps in batch and width"
	@echo "make gradescope  build _build/gradescope/autograder.zip for a Gradescope assignment"

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --warningiserror --nitpick --keep-going --quiet
	@echo "Open _build/html/index.html in a browser (or: $(PY) -m http.server -d _build/html)."

# The student edition: the copy first (scripts/make_student.py), then its site, built from
# the copy itself (which shows that the copy builds), moved out of it to _build/student/html.
STUDENT := _build/student

student: $(STAMP)
	$(PY) scripts/make_student.py $(STUDENT)/repo
	$(VENV)/bin/jupyter-book build $(STUDENT)/repo --warningiserror --nitpick --keep-going --quiet
	rm -rf $(STUDENT)/html
	mv $(STUDENT)/repo/_build/html $(STUDENT)/html
	rm -rf $(STUDENT)/repo/_build
	@echo "Student copy: $(STUDENT)/repo; its site: $(STUDENT)/html/index.html."

# Order: the library, the grader, then the notebooks (nbval), then the site in a browser.
test: test-unit test-grader test-site
	$(PY) -m pytest --nbval --nbval-current-env --nbval-sanitize-with tests/sanitize.cfg book solutions
	$(PY) -m pytest --nbval-lax --nbval-current-env exercises

test-unit: $(STAMP)
	$(PY) -m pytest tests --ignore-glob="tests/test_grader*" --ignore=tests/test_wrong_answers.py --ignore=tests/site

test-grader: $(STAMP)
	bash scripts/ensure_bwrap.sh
	$(PY) -m pytest tests/test_grader*.py tests/test_wrong_answers.py

test-site: book student
	bash scripts/ensure_chromium.sh
	$(PY) -m pytest tests/site

lab: $(STAMP)
	$(VENV)/bin/jupyter lab exercises/

exercises: $(STAMP)
	$(PY) scripts/make_exercises.py

# NB may hold spaces: it is quoted. GRADE_OPTS passes more options to grader.cli
# (--no-sandbox, --memory-limit 2G, --call-timeout 30, ...; see `$(PY) -m grader --help`).
grade: $(STAMP)
	@test -n "$(NB)" || (echo "usage: make grade NB=path/to/notebook.ipynb|folder/ [JSON=out.json] [CSV=out.csv] [GRADE_OPTS=...]" && exit 2)
	@bash scripts/ensure_bwrap.sh || case " $(GRADE_OPTS) " in *" --no-sandbox "*) ;; *) exit 2;; esac
	$(PY) -m grader "$(NB)" $(if $(JSON),--json "$(JSON)") $(if $(CSV),--csv "$(CSV)") --jobs $(JOBS) $(GRADE_OPTS)

# Results go to _build/bench/; benchmarks/README.md says how to record into
# benchmarks/results/ (what chapter 12 reads). BENCH_PY=.venv-bench/bin/python
# runs with the JAX and PyTorch columns.
BENCH_PY ?= $(PY)

bench: $(STAMP)
	$(BENCH_PY) benchmarks/run.py

bench-sweep: $(STAMP)
	$(BENCH_PY) benchmarks/run.py --sweep

clean:
	rm -rf _build

# Gradescope's autograder: setup.sh, run_autograder and the grader (README, Grading on Gradescope).
.PHONY: gradescope
gradescope: $(STAMP)
	$(PY) scripts/make_gradescope.py _build/gradescope/autograder.zip --options "$(GRADESCOPE_OPTS)"
