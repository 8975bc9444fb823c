# Cachet — build, provisioning and the two commands of the README:
#   make run    provisions everything, starts Postgres + the S3 server, serves the API on 127.0.0.1:8080
#   make test   provisions everything, starts the services it needs, runs the whole suite, stops them
# On Debian 12 every Go build, test and the service run inside a Debian trixie rootfs (see scripts/).

SHELL := /bin/bash
.DEFAULT_GOAL := help

export CACHET_CACHE  ?= /var/cache/cachet
export CACHET_ROOTFS ?= $(CACHET_CACHE)/rootfs-trixie
export CACHET_STATE  ?= $(CURDIR)/var
export GOFLAGS       ?= -buildvcs=false

VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
IN_ENV  := scripts/in-env.sh

.PHONY: help toolchain build run test vet bench fuzz services-up services-down services-status clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

toolchain: ## provision libtorch + gotch, Postgres + pgvector, versitygw (idempotent)
	@scripts/provision.sh

build: toolchain ## build bin/cachet
	@$(IN_ENV) go build -ldflags '$(LDFLAGS)' -o bin/cachet ./cmd/cachet

services-up: toolchain ## start Postgres and the S3 server (data and logs under var/)
	@scripts/services.sh up >/dev/null; scripts/services.sh status

services-down: ## stop the services started by services-up
	@scripts/services.sh down

services-status: ## show whether the services run
	@scripts/services.sh status

run: build services-up ## provision, start the services, serve the API on 127.0.0.1:8080
	@echo "==> API keys are required: in another shell, export CACHET_KEY=\$$(./cachet keys create --tenant me)"
	@echo "==> the console: http://127.0.0.1:8080/ (paste a key from ./cachet keys create --tenant me)"
	@./cachet serve

vet: toolchain ## go vet + the house rules
	@$(IN_ENV) go vet ./...
	@scripts/house-rules.sh

test: toolchain ## provision, start services, run every test, stop what it started
	@scripts/test.sh

fuzz: toolchain ## run every fuzz target for FUZZTIME each (default 5m); failures land in testdata/fuzz
	@FUZZTIME=$${FUZZTIME:-5m} scripts/fuzz.sh

bench: toolchain ## Go benchmarks (no services needed)
	@$(IN_ENV) go test -run '^$$' -bench . -benchmem ./...

clean: ## remove build outputs (keeps var/ data and the rootfs)
	rm -rf bin
