## ---- contract drift ----------------------------------------------------------

CONTRACT_DIR := $(ROOT)/bin/contract

# Each service's OpenAPI document comes from its own FastAPI app, built
# without starting it (no database, no broker): app.openapi() is what the
# service would serve at GET /openapi.json.
.PHONY: check-contract
check-contract: venv ## Fail if a service's own OpenAPI (from its FastAPI app, offline) no longer accepts what the gateway sends or declares what it reads, RPC by RPC.
	mkdir -p $(CONTRACT_DIR)
	@# The apps do not start without identity keys to trust (and B's own):
	@# throwaway ones, used for nothing but building the apps.
	$(GO) build -o bin/devtoken ./gateway/cmd/devtoken
	bin/devtoken -init -alg EdDSA -key $(CONTRACT_DIR)/identity-key.json -jwks $(CONTRACT_DIR)/identity.jwks.json
	for svc in service_a service_b; do \
	  (cd $(ROOT)/$$svc && IDENTITY_KEYS=shop-gateway=$(CONTRACT_DIR)/identity.jwks.json \
	    IDENTITY_SIGNING_KEY=$(CONTRACT_DIR)/identity-key.json \
	    $(PY) -c 'import json; from app.main import create_app; print(json.dumps(create_app().openapi()))') \
	    > $(CONTRACT_DIR)/$$svc.json; \
	done
	$(GO) run ./gateway/cmd/contractcheck -doc service_a=$(CONTRACT_DIR)/service_a.json -doc service_b=$(CONTRACT_DIR)/service_b.json
