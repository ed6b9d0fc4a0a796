# One-command set-up: every target below creates .venv when it is missing and
# installs requirements.txt and minigrad into it. Nothing else is needed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: help venv book test lab exercises grade bench bench-sweep clean

help:
	@echo "make book       build the site into _build/html"
	@echo "make test       run every test (unit, notebooks, grading, browser)"
	@echo "make lab        open JupyterLab on the exercises"
	@echo "make exercises  regenerate exercises/ from solutions/"
	@echo "make grade NB=path/to/notebook.ipynb|folder/ [JSON=out.json] [CSV=out.csv]"
	@echo "make bench      benchmark minigrad against numpy and autograd"

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

# Order: the library, then the notebooks (nbval), then the site in a browser.
test: book
	bash scripts/ensure_chromium.sh
	$(PY) -m pytest tests
	$(PY) -m pytest --nbval --nbval-current-env --nbval-sanitize-with tests/sanitize.cfg book solutions
	$(PY) -m pytest --nbval-lax --nbval-current-env exercises

lab: $(STAMP)
	$(VENV)/bin/jupyter lab exercises/

exercises: $(STAMP)
	$(PY) scripts/make_exercises.py

grade: $(STAMP)
	@test -n "$(NB)" || (echo "usage: make grade NB=path/to/notebook.ipynb|folder/ [JSON=out.json] [CSV=out.csv]" && exit 2)
	$(PY) scripts/grade.py $(NB) $(if $(JSON),--json $(JSON)) $(if $(CSV),--csv $(CSV)) --jobs $(JOBS)

bench: $(STAMP)
	$(PY) benchmarks/run.py

bench-sweep: $(STAMP)
	$(PY) benchmarks/run.py --sweep

clean:
	rm -rf _build
