# One entry point for setting up, running and testing; see README.md.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
.PHONY: setup quickstart test test-min lint clean

# torch first, pinned: its CPU build lies on disk here, while a looser spec may pull CUDA.
$(BIN)/nas: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,postgres]'
	@touch $(BIN)/nas

# System packages (Fashion-MNIST; PostgreSQL for the distributed tests), when apt is usable.
/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz:
	@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	else echo "note: install Debian's dataset-fashion-mnist (or set NAS_DATA) for real-data runs"; fi

setup: $(BIN)/nas /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

# The main job: a real search (ProxylessNAS space, Fashion-MNIST, priced at 224x224x3 on the
# shipped Google Pixel 1 table; experiments/hybrid_this_host.yaml prices on this host's table);
# it leaves runs/quickstart/ with the study, report.html and the plots. Rerun to resume.
quickstart: setup
	$(BIN)/nas search experiments/quickstart.yaml

# The distributed tests need a PostgreSQL server: tools/postgres-for-tests.sh starts one on
# 127.0.0.1 (installing Debian's package when it may) and prints its URL.
test: setup
	NAS_TEST_POSTGRES_URL="$${NAS_TEST_POSTGRES_URL:-$$(tools/postgres-for-tests.sh)}" $(BIN)/python -m pytest -q

# The oldest release of every dependency setup.cfg allows (constraints-min.txt), in a venv of
# its own, through the same suite and lint: each floor is one the suite has passed on
# (docs/versions.md). torch first, for the same reason as above.
VENV_MIN ?= .venv-min
# The stamp is written last, so that an install that failed half-way is redone.
$(VENV_MIN)/installed: setup.cfg pyproject.toml constraints-min.txt
	rm -rf $(VENV_MIN)
	$(PYTHON) -m venv $(VENV_MIN)
	$(VENV_MIN)/bin/pip install --quiet --upgrade pip
	$(VENV_MIN)/bin/pip install --quiet -c constraints-min.txt torch
	$(VENV_MIN)/bin/pip install --quiet -c constraints-min.txt -e '.[dev,postgres]'
	$(VENV_MIN)/bin/pip check
	@touch $@

test-min: $(VENV_MIN)/installed
	NAS_TEST_POSTGRES_URL="$${NAS_TEST_POSTGRES_URL:-$$(tools/postgres-for-tests.sh)}" $(VENV_MIN)/bin/python -m pytest -q
	$(VENV_MIN)/bin/ruff check nas search_spaces tests benchmarks

lint: setup
	$(BIN)/ruff check nas search_spaces tests benchmarks

clean:
	rm -rf $(VENV) $(VENV_MIN) build *.egg-info
