# voice-edge — the two commands a person needs are `make up` and `make test`.
#
#   make up        build, start a local Postgres (migrated, seeded) and the OpenAI
#                  stand-in (unless OPENAI_API_KEY is set), serve the app on :3000
#                  with real Spin when it is installed, else our host (RUNTIME=host);
#                  LOCAL_PG_TLS=1: the Postgres speaks TLS only, verified via db_ca_cert
#   make test      lint, unit, conformance, integration and end-to-end tests under our
#                  host, then the same suite under real Spin when Spin is found
#   make test-spin the Spin pass alone (SPIN_BIN, or spin on the PATH)
#   make build     the components (target/wasm32-wasip2/release/*.wasm) and the host
#                  (target/release/voice-edge-host)
#   make jwt       a development JWT for the local app (ROLE=, SUB=, APP_ROLE=)
#   make classconnect  sign and post sample ClassConnect deliveries to the local app
#   make migrate DB_URL=postgres://…   apply sql/migrations to any database
#   make bench     the benchmarks (results go to BENCHMARKS.md by hand)
#   make fuzz      every fuzz target for FUZZ_SECONDS (default 60) each, with figures
#   make deploy    spin deploy with the variables from the environment

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
WASM_TARGET := wasm32-wasip2
FUNCTIONS := $(notdir $(wildcard functions/*))
TEST_COMPONENTS := $(notdir $(wildcard tests/components/*))
HOST_BIN := target/release/voice-edge-host
STANDIN_BIN := target/release/openai-standin
LISTEN ?= 127.0.0.1:3000
STANDIN_LISTEN ?= 127.0.0.1:9100
LOCAL_ENV := .local/dev.env

# Real Spin (production's runtime): SPIN_BIN, else spin on the PATH, else the one
# scripts/setup.sh installs from ../shared/tools. Empty when there is none.
SPIN_BIN ?= $(shell scripts/find-spin.sh)
export SPIN_BIN

.PHONY: help
help:
	@sed -n '3,17p' Makefile | sed 's/^# \{0,1\}//'


.PHONY: setup
setup: ## install what a fresh machine lacks (wasm target, PostgreSQL)
	@scripts/setup.sh

.PHONY: build build-components build-native
build: build-components build-native

build-components:
	@scripts/setup.sh wasm
	@echo "==> building components: $(FUNCTIONS) $(TEST_COMPONENTS)"
	$(CARGO) build --target $(WASM_TARGET) --release $(addprefix -p ,$(FUNCTIONS) $(TEST_COMPONENTS))

# Every native crate that serves or tests the app. They are built and tested in one cargo
# invocation with this one package selection every time, so that cargo unifies their
# dependencies' features once and wasmtime is compiled once, not once per selection.
NATIVE_PKGS := -p voice-edge-host -p voice-edge-openai-standin -p voice-edge-testkit -p voice-edge-integration -p voice-edge-bench
INTEGRATION_TESTS := $(addprefix --test ,$(basename $(notdir $(wildcard tests/integration/tests/*.rs))))

build-native:
	@echo "==> building the host, the stand-ins and the native tests"
	$(CARGO) test --profile host $(NATIVE_PKGS) --no-run
	@mkdir -p target/release
	cp target/host/voice-edge-host $(HOST_BIN)
	cp target/host/openai-standin $(STANDIN_BIN)

.PHONY: up
up: setup build
	@RUNTIME=$(RUNTIME) LOCAL_PG_TLS=$(LOCAL_PG_TLS) scripts/up.sh

.PHONY: classconnect
classconnect: ## sign and post sample ClassConnect deliveries to the app of `make up`
	@set -a; . ./$(LOCAL_ENV); set +a; $(CARGO) run -q --profile host -p voice-edge-bench --bin classconnect-standin -- --url http://$(LISTEN)/functions/v1/practice-webhook

.PHONY: jwt
jwt:
	@python3 scripts/jwt.py $(if $(ROLE),--role $(ROLE)) $(if $(SUB),--sub $(SUB)) $(if $(APP_ROLE),--app-role $(APP_ROLE))

.PHONY: migrate
migrate:
	@test -n "$(DB_URL)" || { echo "usage: make migrate DB_URL=postgres://user:password@host:5432/postgres" >&2; exit 2; }
	@scripts/migrate.sh "$(DB_URL)"

.PHONY: test lint unit fuzz-smoke test-native test-host test-integration test-e2e test-spin spin-pass
test: setup build lint check-deploy unit fuzz-smoke test-native test-reuse-1 test-e2e
	@if [ -n "$(SPIN_BIN)" ]; then \
	  $(MAKE) --no-print-directory spin-pass; \
	  echo "==> all tests passed, under our host and under $$($(SPIN_BIN) --version)"; \
	else \
	  echo "==> all tests passed under our host; no Spin was found (SPIN_BIN, spin on the PATH,"; \
	  echo "    or ../shared/tools beside the project), so the Spin pass did not run"; \
	fi

# The Spin pass alone: the conformance, integration, bench and end-to-end tests with real
# Spin serving the app (`spin up` per test app), and `spin build` of spin.toml.
test-spin: setup build
	@test -n "$(SPIN_BIN)" || { echo "make test-spin: no Spin found: set SPIN_BIN or install one (../shared/tools/install-spin.sh)" >&2; exit 2; }
	@$(MAKE) --no-print-directory spin-pass

spin-pass:
	@scripts/spin-version.sh check "$(SPIN_BIN)"
	@echo "==> Spin pass: $$($(SPIN_BIN) --version) ($(SPIN_BIN))"
	@echo "==> spin build"
	$(SPIN_BIN) build -f spin.toml
	@echo "==> conformance, integration and bench tests under Spin"
	VOICE_EDGE_RUNTIME=spin $(CARGO) test --profile host $(NATIVE_PKGS)
	@scripts/cleanup-test-pg.sh
	@echo "==> conformance and integration tests under Spin with --max-instance-reuse-count 1"
	VOICE_EDGE_RUNTIME=spin VOICE_EDGE_MAX_INSTANCE_REUSE=1 $(CARGO) test --profile host $(NATIVE_PKGS) --test conformance --test postgres $(REUSE1_TESTS)
	@scripts/cleanup-test-pg.sh
	@echo "==> end-to-end tests under Spin"
	@if [ -f tests/e2e/package.json ]; then VOICE_EDGE_RUNTIME=spin scripts/e2e.sh; fi

lint:
	@echo "==> lint: rustfmt and clippy"
	$(CARGO) fmt --all --check
	$(CARGO) clippy --profile host -p voice-edge-shared $(NATIVE_PKGS) --all-targets -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) --release $(addprefix -p ,$(FUNCTIONS)) -- -D warnings
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml --check
	$(CARGO) clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings

unit:
	@echo "==> unit tests (shared/)"
	$(CARGO) test --profile host -p voice-edge-shared

# What `make test` runs under our host: the host's conformance and unit tests, the
# stand-in's, the testkit's, every function's integration tests and the bench crate's.
test-native:
	@echo "==> conformance, stand-in, integration and bench tests under our host"
	$(CARGO) test --profile host $(NATIVE_PKGS)
	@scripts/cleanup-test-pg.sh

# The conformance and integration tests again with `--max-instance-reuse-count 1`: a
# fresh instance per request, as on a platform without instance reuse (the Spin pass
# does the same under Spin). `migrations` starts no app: it runs once, in the main pass.
REUSE1_TESTS := $(addprefix --test ,$(filter-out migrations,$(basename $(notdir $(wildcard tests/integration/tests/*.rs)))))
test-reuse-1:
	@echo "==> conformance and integration tests under our host with --max-instance-reuse-count 1"
	VOICE_EDGE_MAX_INSTANCE_REUSE=1 $(CARGO) test --profile host $(NATIVE_PKGS) --test conformance --test postgres $(REUSE1_TESTS)
	@scripts/cleanup-test-pg.sh

# The fuzz targets (fuzz/, a workspace of its own, built by cargo-afl): a few seconds
# each so that CI keeps them building and passing, then their oracle and seed tests.
FUZZ_SMOKE_SECONDS ?= 5
fuzz-smoke:
	@echo "==> fuzz smoke: every target for $(FUZZ_SMOKE_SECONDS) s"
	FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS) scripts/fuzz.sh
	cd fuzz && $(CARGO) afl test --release --lib --target "$$(rustc -vV | sed -n 's/^host: //p')"

test-host:
	@echo "==> conformance tests (VOICE_EDGE_RUNTIME=spin for real Spin)"
	$(CARGO) test --profile host $(NATIVE_PKGS) --test conformance --test postgres --test reuse

test-integration:
	@echo "==> integration tests (components + real PostgreSQL; VOICE_EDGE_RUNTIME=spin for real Spin)"
	$(CARGO) test --profile host $(NATIVE_PKGS) $(INTEGRATION_TESTS)
	@scripts/cleanup-test-pg.sh

test-e2e:
	@if [ -f tests/e2e/package.json ]; then scripts/e2e.sh; else echo "==> no end-to-end suite yet"; fi

.PHONY: check-deploy
check-deploy:
	@echo "==> deployment files: actionlint, SpinKube manifest, deploy script"
	@scripts/check-deploy.sh

.PHONY: fuzz
fuzz: ## every fuzz target for FUZZ_SECONDS (default 60) each: executions, exec/s, corpus, crashes
	@scripts/fuzz.sh

.PHONY: bench
bench: build
	$(CARGO) run --profile host -p voice-edge-bench --bin voice-edge-bench -- all

.PHONY: deploy
deploy:
	@scripts/deploy.sh

.PHONY: fixtures
fixtures: ## regenerate the auth and bucketing known-answer fixtures (Python 3 + pip, Node 18+)
	python3 -m venv .venv-fixtures && .venv-fixtures/bin/pip install -q PyJWT cryptography
	.venv-fixtures/bin/python shared/fixtures/jwt/generate.py
	node shared/fixtures/bucket/generate.mjs

.PHONY: db-start db-stop
db-start: ## the local database alone (migrated, seeded); prints its connection strings
	@LOCAL_PG_TLS=$(LOCAL_PG_TLS) scripts/localdb.sh start
db-stop:
	@scripts/localdb.sh stop

.PHONY: clean-local
clean-local: ## stop the local database and remove .local/
	@scripts/localdb.sh stop || true
	rm -rf .local
