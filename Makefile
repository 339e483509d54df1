# callbridge: `make demo` runs the product on the simulator, `make test` runs the whole suite.
# Both create .venv with the pinned dependencies on first use (Python 3.11+).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/
export AMQP_URL

.PHONY: demo test test-unit lint format sizes bench bench-stack readme clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "callbridge needs Python 3.11 or newer")'
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3 -m venv failed; installing the venv module (Debian/Ubuntu: python3-venv)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq python3-venv; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq python3-venv; fi; \
	  $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/callbridge demo

test: $(STAMP)
	$(BIN)/pytest

test-unit: $(STAMP)
	$(BIN)/pytest -m "not rabbitmq and not postgresql and not cluster"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python tools/sizes.py

sizes: $(STAMP)
	$(BIN)/python tools/sizes.py

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/tracker.py
	$(BIN)/python bench/bus.py
	$(BIN)/python bench/webhooks.py
	$(BIN)/python bench/transcode.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/monitor_memory.py

bench-stack: $(STAMP)
	$(BIN)/python bench/stack.py

readme: $(STAMP)
	$(BIN)/python docs/config_reference.py --write

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
