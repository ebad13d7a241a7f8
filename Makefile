# Targets a developer and CI use. `make test` is what CI runs (see .ci/run).

PYTHON3 ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
# A developer's environment has every extra: training (TensorFlow, Keras,
# scikit-learn), evaluation (scikit-learn, matplotlib) and the test tools.
# `pip install spamcli` alone is the light install (click and NumPy).
EXTRAS := train,evaluate,test
# The serve extra (aiohttp, pymilter) for `spamcli serve --http/--milter`:
# pymilter builds against libmilter (Debian's libmilter-dev). Where it
# cannot, everything else is installed and those tests skip, saying why.
INSTALL_EXTRAS = $(PYTHON) -m pip install -e '.[$(EXTRAS),serve]' || { echo "make: the serve extra did not install (pymilter needs libmilter-dev); installing without it"; $(PYTHON) -m pip install -e '.[$(EXTRAS)]'; }

.PHONY: help install print-extras test test-fast lint demo fuzz

help:
	@echo "make demo       install if needed, then classify data/samples/*.eml with the built-in model"
	@echo "make test       install if needed, then run every test, slow ones included"
	@echo "make test-fast  the tests not marked slow"
	@echo "make lint       ruff check, ruff format --check, mypy"
	@echo "make install    (re)install the package, its extras and its test tools into $(VENV)"
	@echo "make fuzz       a long property-based run over the parser and scorer (FUZZ_EXAMPLES, FUZZ_MINUTES)"

# The virtual environment, made and filled on first use. A failed install
# removes $(PYTHON), so the next make tries again instead of using a
# half-filled environment. After a change to the dependencies in setup.cfg,
# run `make install`.
$(PYTHON):
	$(PYTHON3) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip && { $(INSTALL_EXTRAS); } || { rm -f $(PYTHON); exit 1; }

install:
	test -x $(PYTHON) || $(PYTHON3) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(INSTALL_EXTRAS)

test: $(PYTHON)
	$(PYTHON) -m pytest

test-fast: $(PYTHON)
	$(PYTHON) -m pytest -m "not slow"

lint: $(PYTHON)
	$(VENV)/bin/ruff check spamcli tests
	$(VENV)/bin/ruff format --check spamcli tests
	$(VENV)/bin/mypy spamcli

# The extras `make install` installs, for .ci/run.
print-extras:
	@echo $(EXTRAS)

demo: $(PYTHON)
	$(VENV)/bin/spamcli predict data/samples/*.eml

# bench/fuzz.py: 100,000 hostile inputs through the parser, the tokenizer and
# the scorer (about 40 minutes on 2 cores); FUZZ_MINUTES stops it sooner.
FUZZ_EXAMPLES ?= 100000
FUZZ_MINUTES ?=
fuzz: $(PYTHON)
	$(PYTHON) bench/fuzz.py --examples $(FUZZ_EXAMPLES) $(if $(FUZZ_MINUTES),--minutes $(FUZZ_MINUTES))
