# mtkit: two commands for a new machine.
#   make demo   install what is needed, build, run the pipeline on the built-in demo corpora
#   make test   install what is needed, build, run every test
# and: make install (mtkit and mtkit-train into ~/.local/bin), and for developers make bench
# (BENCHMARKS.md; needs ../shared/data) and make fuzz.
# Everything large (libtorch, the tokenizer, cargo's target folder) lives under
# $(MTKIT_CACHE) (default ~/.cache/mtkit), outside the repository.

SHELL := /bin/bash
MTKIT_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/mtkit
CARGO_TARGET_DIR ?= $(MTKIT_CACHE)/target
LIBTORCH ?= $(MTKIT_CACHE)/libtorch-2.11.0
export MTKIT_CACHE CARGO_TARGET_DIR LIBTORCH
MTKIT := $(CARGO_TARGET_DIR)/release/mtkit
CARGO ?= cargo

.PHONY: setup hf-venv py-venv python build install demo test bench fmt clippy fuzz fuzz-ci

setup:
	@bash scripts/setup.sh

# Both programs: mtkit (data commands, no LibTorch) and mtkit-train (the LibTorch trainer).
# (--workspace also compiles the Python module's crate, so that clippy and the tests see it.)
build: setup
	$(CARGO) build --release --locked --workspace

# `mtkit` and `mtkit-train` onto PATH: $(PREFIX)/bin, ~/.local/bin by default (mtkit finds
# mtkit-train beside itself; mtkit-train finds libtorch under the cache by its rpath).
PREFIX ?= $(HOME)/.local
install: build
	@install -d "$(PREFIX)/bin"
	install -m 0755 "$(MTKIT)" "$(MTKIT)-train" "$(PREFIX)/bin/"
	@case ":$$PATH:" in *":$(PREFIX)/bin:"*) echo "mtkit and mtkit-train are in $(PREFIX)/bin, on PATH";; \
	  *) echo "mtkit and mtkit-train are in $(PREFIX)/bin, which is not on PATH: add  export PATH=\"$(PREFIX)/bin:\$$PATH\"  to your shell's rc file";; esac

demo: build
	@bash scripts/demo.sh "$(MTKIT)"

# transformers (pinned, from PyPI) for the tests that prove mtkit's Hugging Face checkpoints
# against it; under `make test` they must run, not skip.
hf-venv:
	@bash scripts/hf-venv.sh

# maturin, polars, datasets and pytest (pinned, from PyPI) for the Python package's tests.
py-venv:
	@bash scripts/py-venv.sh

# The Python package (`import mtkit`): maturin builds the wheel over the same compiled library
# as `make build` (same profile and features, same target folder) and installs it into the
# py-venv; `pip install .` does the same for a user.
PY_VENV := $(MTKIT_CACHE)/py-venv
WHEELS := $(MTKIT_CACHE)/wheels
python: setup py-venv
	@rm -rf "$(WHEELS)"
	@# maturin repairs the wheel by patching the built library in place (its OpenBLAS name
	@# becomes the vendored copy's), so a second build with nothing to recompile would find a
	@# library naming a file that exists only inside the old wheel: relink it every time.
	@rm -f "$(CARGO_TARGET_DIR)/maturin/lib_mtkit.so" "$(CARGO_TARGET_DIR)/release/deps/lib_mtkit.so"
	"$(PY_VENV)/bin/maturin" build --release --locked --quiet -o "$(WHEELS)"
	"$(PY_VENV)/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps "$(WHEELS)"/mtkit-*.whl

test: setup hf-venv python
	MTKIT_HF_PYTHON="$(MTKIT_CACHE)/hf-venv/bin/python" $(CARGO) test --release --locked --workspace
	MTKIT_BIN="$(MTKIT)" MTKIT_WHEELS="$(WHEELS)" "$(PY_VENV)/bin/python" -m pytest -q python/tests

bench:
	@bash scripts/bench.sh

# Coverage-guided fuzzing of every reader of user bytes (libFuzzer via cargo fuzz, installed
# from crates.io when absent): 10 minutes per target, or CI's bounded, reproducible run.
fuzz: setup
	@bash scripts/fuzz.sh 600

fuzz-ci: setup
	@bash scripts/fuzz.sh ci

fmt:
	$(CARGO) fmt --all

clippy: setup
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings
