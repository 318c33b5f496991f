# The two commands of the README:
#   make run   -> creates .venv (torch pinned by constraints.txt), installs the
#                 project, runs the default config with profiles/local
#   make test  -> the same environment, then the whole test suite
PYTHON ?= python3
VENV ?= .venv
SNAKEMAKE_ARGS ?=

.PHONY: run test env format clean-env

run: $(VENV)/.installed
	$(VENV)/bin/snakemake --profile profiles/local $(SNAKEMAKE_ARGS)

# Whole test files per worker (--dist loadfile), so that a module's fixtures run once.
TEST_WORKERS ?= 2

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest --numprocesses $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

env: $(VENV)/.installed

# What tests/workflow/test_lint.py checks, fixed where the tools can.
format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	$(VENV)/bin/snakefmt Snakefile workflow/rules tests/slurm/toy/Snakefile

# Reinstalled whenever the dependency declarations change.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet -c constraints.txt -e ".[test,fused]"
	touch $@

clean-env:
	rm -rf $(VENV)
