## ---- Python services (service_a, service_b) ------------------------------------

PY_REQUIREMENTS := $(ROOT)/service_a/requirements.txt $(ROOT)/service_b/requirements.txt $(ROOT)/tests/requirements.txt
VENV_STAMP      := $(VENV)/.requirements.stamp

# Reruns only when a requirements file or the shared package's metadata
# changes (its code is installed editable, so edits need no reinstall).
# The services' requirements name the shared package as `-e ../shopkit`, and
# pip resolves a directory in a requirements file from the current directory,
# not from the file's: hence pip runs in service_a/, where ../shopkit is it.
$(VENV_STAMP): $(PY_REQUIREMENTS) $(ROOT)/shopkit/pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	cd $(ROOT)/service_a && bash $(ROOT)/scripts/progress.sh "make venv" $(PY) -m pip install --quiet --disable-pip-version-check $(addprefix -r ,$(PY_REQUIREMENTS))
	touch $@

.PHONY: venv
venv: $(VENV_STAMP) ## Create .venv: both services' pinned requirements and shopkit/ (editable).

.PHONY: test-python-unit
test-python-unit: venv ## pytest of both services on SQLite (+PostgreSQL with TEST_DATABASE_URL_A/_B); no Kafka.
	PY=$(PY) bash $(ROOT)/scripts/pytest.sh unit

.PHONY: test-python-integration
test-python-integration: venv ## Both services as real processes against the broker on $KAFKA_BROKERS.
	PY=$(PY) bash $(ROOT)/scripts/pytest.sh integration

.PHONY: run-service-a
run-service-a: venv ## Run service_a (stock, master carts) on 127.0.0.1:8002; env: service_a/README.md.
	cd $(ROOT)/service_a && exec $(PY) -m app

.PHONY: run-service-b
run-service-b: venv ## Run service_b (cart read model, orders) on 127.0.0.1:8001; env: see service_b/README.md.
	cd $(ROOT)/service_b && exec $(PY) -m app

.PHONY: bench-services
bench-services: venv ## Services vs a hello-world FastAPI (wrk): GET /stock, add-to-cart direct and through the gateway, growth; env: scripts/bench-services.sh.
	PY=$(PY) bash $(ROOT)/scripts/bench-services.sh
