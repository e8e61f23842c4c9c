# Two commands on a fresh machine: `make demo` and `make test`. Only Python 3.11+ and make needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck unit clean slurm browser

demo: $(VENV)/.runtime-installed
	$(BIN)/python mutation.py -ec settings/quickstart.json

test: $(VENV)/.dev-installed lint typecheck unit

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy

# Four workers on any machine: most tests wait on real processes and clocks, not on a core (how
# the workers share the files: pyproject.toml's addopts).
unit: $(VENV)/.dev-installed slurm browser
	$(BIN)/python -m pytest -n 4

# The Slurm tests start a real Slurm (Debian's slurm-wlm + munge). Installed here where apt-get can
# (as root); elsewhere the tests are skipped with the reason, except under CI, where they must run.
slurm:
	@if command -v slurmctld >/dev/null 2>&1 && command -v munged >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing slurm-wlm and munge for the Slurm tests"; \
	  apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null 2>&1; } || \
	  echo "note: slurm-wlm and munge could not be installed: the Slurm tests will be skipped"; \
	else echo "note: the Slurm tests need slurm-wlm and munge (apt-get as root); they will be skipped"; fi

# The report page is checked in headless Chromium (layout on a phone and a desktop, sorting).
# Installed here where apt-get can (as root); elsewhere that test is skipped, except under CI.
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  command -v google-chrome >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium for the report page's test"; \
	  apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; } || \
	  echo "note: chromium could not be installed: the report page's browser test will be skipped"; \
	else echo "note: the report page's browser test needs chromium (apt-get as root); it will be skipped"; fi

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime-installed: requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.runtime-installed
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
