# Shop gateway: a gRPC-transcoding API gateway (Go) in front of two Python
# services, with every mutation emitted to Kafka. `make help` lists targets.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

ROOT    := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
TOOLS   := $(ROOT)/.tools/bin
BUF     := $(TOOLS)/buf
VENV    := $(ROOT)/.venv
PY      := $(VENV)/bin/python
GO      ?= go
export PATH := $(TOOLS):$(PATH)

-include $(ROOT)/mk/*.mk

.PHONY: help
help: ## Show this help (colour only on a terminal).
	@if [ -t 1 ]; then on=$$(printf '\033[36m'); off=$$(printf '\033[0m'); else on=; off=; fi; \
	awk -v on="$$on" -v off="$$off" 'BEGIN {FS = ":.*## "} \
	  /^[a-zA-Z0-9_.-]+:.*## / {name[++n] = $$1; text[n] = $$2; if (length($$1) > w) w = length($$1)} \
	  END {for (i = 1; i <= n; i++) printf "  %s%-*s%s  %s\n", on, w, name[i], off, text[i]}' \
	  $(MAKEFILE_LIST) | sort

## ---- code generation ----------------------------------------------------

TOOLS_STAMP := $(TOOLS)/.stamp
$(TOOLS_STAMP): tools/go.mod tools/go.sum
	@echo "building buf, the protoc plugins and grpcurl into .tools/bin (3-5 min on a fresh machine)"
	cd tools && GOBIN=$(TOOLS) bash $(ROOT)/scripts/progress.sh "make tools" $(GO) install \
	  github.com/bufbuild/buf/cmd/buf \
	  google.golang.org/protobuf/cmd/protoc-gen-go \
	  google.golang.org/grpc/cmd/protoc-gen-go-grpc \
	  github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway \
	  github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2 \
	  github.com/fullstorydev/grpcurl/cmd/grpcurl
	touch $@

.PHONY: tools
tools: $(TOOLS_STAMP) ## Build buf, the protoc plugins and grpcurl at pinned versions into .tools/bin.

.PHONY: grpcurl
grpcurl: ## Build only grpcurl (pinned in tools/go.mod) into .tools/bin, for the README examples.
	cd tools && GOBIN=$(TOOLS) bash $(ROOT)/scripts/progress.sh "make grpcurl" $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl

.PHONY: protos
protos: ## Fetch the imported third-party protos into .third_party/ (not committed).
	bash scripts/fetch-protos.sh

.PHONY: generate
generate: tools protos ## Regenerate gen/ from proto/ with buf (offline, local plugins), then the OpenAPI 3 and AsyncAPI 3 documents.
	$(BUF) format -w proto
	$(BUF) lint
	$(BUF) generate
	$(GO) run ./gateway/cmd/openapigen -in gen/openapiv2/shop.swagger.json -out gen/openapi
	$(GO) run ./gateway/cmd/asyncapigen -out gen/asyncapi

.PHONY: checkgenerate
checkgenerate: generate ## Fail if `make generate` changes anything under proto/ or gen/.
	@if [ -n "$$(git status --porcelain -- proto gen)" ]; then \
	  echo "generated code is out of date; run make generate and commit:"; \
	  git status --porcelain -- proto gen; git diff --stat -- proto gen; exit 1; fi
	@echo "gen/ is up to date"

.PHONY: breaking
breaking: tools protos ## Check proto/ for WIRE_JSON breaking changes against main.
	$(BUF) breaking --against '.git#branch=main'

## ---- build, lint ----------------------------------------------------------

.PHONY: build
build: ## Build the gateway binary into bin/gateway.
	@echo "building bin/gateway (a first build downloads and compiles the Go modules: minutes)"
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/gateway ./gateway/cmd/gateway

.PHONY: lint
lint: tools protos lint-python lint-asyncapi check-contract check-clients ## go vet, gofmt, buf lint; ruff and mypy (lint-python); the AsyncAPI document (lint-asyncapi); the services against the proto (check-contract); the OpenAPI document's clients (check-clients).
	$(GO) vet ./...
	@out="$$(gofmt -l gateway gen)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(BUF) lint

.PHONY: check-clients
check-clients: ## Generate clients of the served OpenAPI document (openapi-python-client + mypy --strict, oapi-codegen + go vet, openapi-typescript + tsc --strict), lint it (Redocly, openapi-generator); fail on any warning. Tools pinned in tools/clients/, installed into .clients/.
	bash scripts/check-clients.sh

## ---- Kafka -----------------------------------------------------------------

.PHONY: kafka-start
kafka-start: ## Start the local single-node KRaft broker on 127.0.0.1:$KAFKA_PORT (default 9092).
	bash scripts/kafka.sh start

.PHONY: kafka-stop
kafka-stop: ## Stop the local Kafka broker.
	bash scripts/kafka.sh stop

## ---- tests -------------------------------------------------------------------

.PHONY: test-go-unit
test-go-unit: ## Go unit tests with the race detector (fuzz seed corpora included).
	$(GO) test -race -count=1 ./gateway/...

.PHONY: test
test: ## Every test: Go unit, Python, and the integration and end-to-end suites against a real Kafka.
	bash scripts/test-all.sh

.PHONY: compose-test
compose-test: ## Start docker-compose.yml for real (podman + docker-compose, stand-in base images from deploy/ci-images/; root) and drive a purchase through it; down -v after.
	bash scripts/compose-test.sh

.PHONY: chromium
chromium: ## Install Debian's chromium (root) for the API explorer's browser test, unless it is there.
	@test -x /usr/bin/chromium || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

.PHONY: bench
bench: ## Benchmarks: gateway REST and gRPC vs a reverse proxy, outbox, relay, events; refuses at a 1-minute load above 1.5; env: scripts/bench.sh.
	bash scripts/bench.sh

## ---- run ---------------------------------------------------------------------

.PHONY: run
run: ## Start Kafka, service_a, service_b and the gateway; Ctrl-C stops them all.
	bash scripts/run.sh

RUN_DIR ?= $(ROOT)/.run
SUB     ?= 7
SCOPE   ?=

.PHONY: token
token: ## Print an access token for the make run stack: make -s token SUB=7 [SCOPE=shop:admin].
	@$(GO) build -o bin/devtoken ./gateway/cmd/devtoken
	@bin/devtoken -key "$(RUN_DIR)/dev-key.json" -sub "$(SUB)" -scope "$(SCOPE)"

SVC ?=

.PHONY: service-header
service-header: ## Print an identity header the make run services accept for 10 min: make -s service-header SVC=service_a [SUB=7] [SCOPE=shop:admin]; no SUB: the gateway itself.
	@test -n "$(SVC)" || { echo "usage: make -s service-header SVC=service_a|service_b [SUB=7] [SCOPE=shop:admin]" >&2; exit 2; }
	@$(GO) build -o bin/devtoken ./gateway/cmd/devtoken
	@bin/devtoken -assertion -key "$(RUN_DIR)/service-signing-key.json" -aud "$(SVC)" $(if $(filter command line,$(origin SUB)),-sub "$(SUB)") $(if $(SCOPE),-scope "$(SCOPE)")

.PHONY: clean
clean: ## Stop the local broker and PostgreSQL, then remove build output, local tools, venv, Kafka and PostgreSQL data, jars.
	-bash scripts/kafka.sh stop
	-bash scripts/postgres.sh stop
	rm -rf bin .tools .third_party .venv .kafka .pg .run .outbox .asyncapi .clients
