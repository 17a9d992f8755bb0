## ---- Python services (service_a, service_b) ------------------------------------

PY_REQUIREMENTS := $(ROOT)/requirements.txt $(ROOT)/requirements-dev.txt
VENV_STAMP      := $(VENV)/.requirements.stamp

# Reruns only when a requirements file or the shared packages' metadata
# changes (their code is installed editable, so edits need no reinstall).
# shopkit/testing (shopkit_testing, the test suites' helpers) is installed
# here only: the services' image installs shopkit alone.
# requirements.txt pins the services' dependencies (the image installs the
# same file), requirements-dev.txt adds the test runners and the linters.
$(VENV_STAMP): $(PY_REQUIREMENTS) $(ROOT)/shopkit/pyproject.toml $(ROOT)/shopkit/testing/pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	cd $(ROOT) && bash $(ROOT)/scripts/progress.sh "make venv" $(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -e ./shopkit -e ./shopkit/testing
	touch $@

.PHONY: venv
venv: $(VENV_STAMP) ## Create .venv: the services' pinned requirements, test and lint tools, shopkit/ and shopkit/testing/ (editable).

.PHONY: test-python-unit
test-python-unit: venv ## pytest of both services on SQLite (+PostgreSQL with TEST_DATABASE_URL_A/_B); no Kafka.
	PY=$(PY) bash $(ROOT)/scripts/pytest.sh unit

.PHONY: test-python-integration
test-python-integration: venv ## Both services as real processes against the broker on $KAFKA_BROKERS.
	PY=$(PY) bash $(ROOT)/scripts/pytest.sh integration

.PHONY: run-service-a
# The port comes from SERVICE_A_PORT / SERVICE_B_PORT, as in make run, when
# set (the service's own flag --port, validated like PORT); else PORT or the
# service's default.
run-service-a: venv ## Run service_a (stock, master carts) on 127.0.0.1:$SERVICE_A_PORT (default 8002); env: service_a/README.md.
	cd $(ROOT)/service_a && exec $(PY) -m app $(if $(SERVICE_A_PORT),--port '$(SERVICE_A_PORT)')

.PHONY: run-service-b
run-service-b: venv ## Run service_b (cart read model, orders) on 127.0.0.1:$SERVICE_B_PORT (default 8001); env: service_b/README.md.
	cd $(ROOT)/service_b && exec $(PY) -m app $(if $(SERVICE_B_PORT),--port '$(SERVICE_B_PORT)')

.PHONY: bench-services
bench-services: venv ## Services vs a hello-world FastAPI (wrk), SQLite and PostgreSQL: GET /stock, add-to-cart and pay direct vs through the gateway (auth, events, outbox sync always), growth; refuses at a 1-minute load above 1.5; env: scripts/bench-services.sh.
	PY=$(PY) bash $(ROOT)/scripts/bench-services.sh

PY_SOURCES := shopkit/src shopkit/testing/src service_a service_b tests/compose $(wildcard scripts/*.py)

.PHONY: lint-python
lint-python: venv ## ruff (lint, format), mypy (strict on shopkit and shopkit_testing: mypy.ini; each service's app/: mypy-services.ini), no module over 400 lines (scripts/check_module_sizes.py).
	$(PY) $(ROOT)/scripts/check_module_sizes.py
	cd $(ROOT) && $(VENV)/bin/ruff check $(PY_SOURCES)
	cd $(ROOT) && $(VENV)/bin/ruff format --check $(PY_SOURCES)
	cd $(ROOT) && $(VENV)/bin/mypy
	cd $(ROOT)/service_a && $(VENV)/bin/mypy --config-file $(ROOT)/mypy-services.ini app
	cd $(ROOT)/service_b && $(VENV)/bin/mypy --config-file $(ROOT)/mypy-services.ini app
