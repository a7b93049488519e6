# burstguard developer entry points. `make setup` then `make test` is all a newcomer needs.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: setup deps venv lint test test-unit test-node test-cluster test-chart test-lab test-fuzz chaos fmt bpf-check kube image

## setup: install system packages and toolchains (.ci/setup.d/*.sh), the Python venv, the image
setup: deps venv image

deps:
	@for s in .ci/setup.d/*.sh; do echo "== $$s"; bash "$$s" || exit 1; done

venv:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'

## lint: ruff, mypy --strict, import-linter layering
lint:
	$(BIN)/ruff check burstguard tests deploy/image
	$(BIN)/ruff format --check burstguard tests deploy/image
	$(BIN)/mypy --strict burstguard
	$(BIN)/mypy --strict deploy/image
	$(BIN)/lint-imports

fmt:
	$(BIN)/ruff format burstguard tests deploy/image
	$(BIN)/ruff check --fix burstguard tests deploy/image

## image: the container image dist/burstguard-<version>.oci.tar, tagged localhost/burstguard:<version>
## (deploy/image/build.py: Debian packages + this wheel; root; skipped when its inputs are unchanged)
image:
	$(PY) deploy/image/build.py

## test: the whole suite (lint, then every test layer). This is the command CI runs.
## The chaos layer runs only its leader kill here; `make chaos` runs every fault.
test: lint
	$(BIN)/pytest tests -m "not chaos"

## chaos: every fault during a paced burst on the real control plane, then the table of rows
chaos:
	$(BIN)/pytest tests/cluster/test_chaos.py

## test-fuzz: the fuzz targets alone (hypothesis, fixed example counts; also in make test)
test-fuzz:
	$(BIN)/pytest -m fuzz tests

test-unit:
	$(BIN)/pytest tests/unit

## kube: build (or reuse) the local control-plane binaries (tests/cluster/kube/build.sh)
kube:
	tests/cluster/kube/build.sh

test-cluster:
	$(BIN)/pytest tests/cluster

## bpf-check: parse-check every bpf/*.bt with bpftrace -d and match it to its bpf/*.yaml spec
bpf-check:
	$(PY) -m burstguard.bpf.checking bpf

## chart: regenerate the chart's values.schema.json and crds/ (tests/chart/generating.py)
## manifests: regenerate manifests/ from the chart too (needs helm: make setup)
.PHONY: chart manifests
chart:
	$(PY) -m tests.chart.generating --no-manifests

manifests:
	$(PY) -m tests.chart.generating

## test-chart: helm lint, helm template per ci values file, kubeconform -strict, drift checks,
## and the rendered objects applied to the local control plane
test-chart:
	$(BIN)/pytest tests/chart

## test-lab: the incident-lab smoke test (boots the 6.1 guest under qemu; a few minutes)
test-lab:
	$(BIN)/pytest -m lab tests/lab
