# mtkit: two commands for a new machine.
#   make demo   install what is needed, build, run the pipeline on the built-in demo corpora
#   make test   install what is needed, build, run every test
# and, for developers, make bench (BENCHMARKS.md; needs ../shared/data) and make fuzz.
# Everything large (libtorch, the tokenizer, cargo's target folder) lives under
# $(MTKIT_CACHE) (default ~/.cache/mtkit), outside the repository.

SHELL := /bin/bash
MTKIT_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/mtkit
CARGO_TARGET_DIR ?= $(MTKIT_CACHE)/target
LIBTORCH ?= $(MTKIT_CACHE)/libtorch-2.11.0
export MTKIT_CACHE CARGO_TARGET_DIR LIBTORCH
MTKIT := $(CARGO_TARGET_DIR)/release/mtkit
CARGO ?= cargo

.PHONY: setup hf-venv build demo test bench fmt clippy fuzz fuzz-ci

setup:
	@bash scripts/setup.sh

# Both packages: mtkit (data commands, no LibTorch) and mtkit-train (the LibTorch trainer).
build: setup
	$(CARGO) build --release --locked --workspace

demo: build
	@bash scripts/demo.sh "$(MTKIT)"

# transformers (pinned, from PyPI) for the tests that prove mtkit's Hugging Face checkpoints
# against it; under `make test` they must run, not skip.
hf-venv:
	@bash scripts/hf-venv.sh

test: setup hf-venv
	MTKIT_HF_PYTHON="$(MTKIT_CACHE)/hf-venv/bin/python" $(CARGO) test --release --locked --workspace

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
