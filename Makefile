# Each target creates .venv (and installs gpusim into it) when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export GPUSIM_CACHE_DIR ?= $(CURDIR)/.cache/gpusim

.PHONY: demo docs test bench clean gpu-wheels gpu-variant

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=68" wheel
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gpusim run demo -o demo.ome.zarr --overwrite
	$(BIN)/gpusim report demo.ome.zarr -o demo.png
	$(BIN)/gpusim info demo.ome.zarr
	# the 3D view as a picture (napari; under xvfb-run where there is no display)
	if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then $(BIN)/gpusim view demo.ome.zarr --3d --screenshot demo-3d.png; \
	elif command -v xvfb-run >/dev/null; then xvfb-run -a $(BIN)/gpusim view demo.ome.zarr --3d --screenshot demo-3d.png; \
	else echo "no display and no xvfb-run: no demo-3d.png"; fi

docs: $(STAMP)
	$(BIN)/mkdocs build --strict -d site

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/gpusim bench --agents 1e5,1e6,4e6 --steps 20 --record benchmarks/RESULTS.md

# Wheels for benchmarks/gpu_check.sh on a GPU machine without network (Python 3.12, x86-64 Linux): gpusim
# itself and the dependencies such a machine lacks (it has numba, numba-cuda, cupy, pandas, matplotlib, rich
# and pytest), at the versions of this checkout's .venv. numpy travels too: the H200 image's numpy 2.5 lacks
# np.row_stack, which numba-cuda (0.30.4 and before) registers as it compiles its first kernel.
GPU_PYTHON ?= 3.12
GPU_DEPENDENCIES := numpy pydantic pydantic_core annotated-types typing-inspection zarr numcodecs donfig google-crc32c mpi4py mpich
gpu-wheels: $(STAMP)
	rm -rf .whl build && mkdir -p .whl  # setuptools would pack modules left in build/ by an older tree
	$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation -w .whl .
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --python-version $(GPU_PYTHON) \
		--implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 -d .whl \
		$$($(BIN)/python -m pip freeze | grep -i -E '^($(shell echo $(GPU_DEPENDENCIES) | tr ' ' '|'))==')
	ls -l .whl && du -sh .whl

clean:
	rm -rf $(VENV) .cache demo.ome.zarr demo.png demo-3d.png site .whl .whl-*

# gpusim's wheel built from another branch, for gpu_check.sh's GPU_CHECK_VARIANTS (its dependencies come from .whl/)
# (a branch lives only in the session that made it: what should wait for a later GPU goes on main as a setting)
gpu-variant: $(STAMP)
	@test -n "$(BRANCH)" || { echo "usage: make gpu-variant BRANCH=name"; exit 2; }
	rm -rf .whl-$(BRANCH) && mkdir -p .whl-$(BRANCH)
	source=$$(mktemp -d) && git archive $(BRANCH) | tar -x -C $$source && \
		$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation -w .whl-$(BRANCH) $$source; \
		status=$$?; rm -rf $$source; exit $$status
	ls -l .whl-$(BRANCH)
