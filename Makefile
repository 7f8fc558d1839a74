# Kizy: two commands. `make up` serves the site; `make test` runs the whole suite.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.kizy-installed
# Extra pip arguments for the torch install, e.g. TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
# where pip would otherwise pick the CUDA build (PyPI on Linux x86_64). KIZY_ALLOW_CUDA_TORCH=1 accepts a CUDA build.
TORCH_PIP_ARGS ?=

.PHONY: up test install lint typecheck bench clean-home

up: $(STAMP)
	$(PY) -m kizy_site.launcher

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

install: $(STAMP)

# Re-runs only when the lock or the project metadata changes, so a second `make up` starts in seconds.
$(STAMP): requirements.txt pyproject.toml tests/nodepack/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24" setuptools wheel
	$(PIP) install -q $(TORCH_PIP_ARGS) torch==2.13.0
	@$(PY) -c "import os, sys, torch; sys.exit(f'torch {torch.__version__} is a CUDA build (CUDA {torch.version.cuda}); Kizy installs the CPU build. Rerun with TORCH_PIP_ARGS=\"--index-url https://download.pytorch.org/whl/cpu\", or set KIZY_ALLOW_CUDA_TORCH=1 to keep it.' if torch.version.cuda and not os.environ.get('KIZY_ALLOW_CUDA_TORCH') else 0)"
	$(PIP) install -q --no-deps -r requirements.txt
	$(PIP) install -q --no-deps spandrel==0.4.2
	$(PIP) install -q --no-deps --no-build-isolation -e . -e tests/nodepack
	@$(PY) -c "import importlib.util, sys; sys.exit('torchvision must not be installed (it breaks diffusers beside the CPU torch)' if importlib.util.find_spec('torchvision') else 0)"
	@touch $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check .

typecheck: $(STAMP)
	$(PY) -m mypy --strict gpu_workers

bench: $(STAMP)
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done
