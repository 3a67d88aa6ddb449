# Each target creates .venv (and installs gpusim into it) when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export GPUSIM_CACHE_DIR ?= $(CURDIR)/.cache/gpusim

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=68" wheel
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gpusim run demo -o demo.ome.zarr --overwrite
	$(BIN)/gpusim report demo.ome.zarr -o demo.png
	$(BIN)/gpusim info demo.ome.zarr

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/gpusim bench --agents 1e5,1e6,4e6 --steps 20 --record benchmarks/RESULTS.md

clean:
	rm -rf $(VENV) .cache demo.ome.zarr demo.png
