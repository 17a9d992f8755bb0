## ---- AsyncAPI ------------------------------------------------------------------

# The AsyncAPI project's own parser validates the generated document. It is
# an npm package, pinned with its lockfile in tools/asyncapi/ and installed
# with npm ci into the ignored .asyncapi/ (the script runs from there so that
# node resolves the package next to it).
ASYNCAPI_DIR   := $(ROOT)/.asyncapi
ASYNCAPI_STAMP := $(ASYNCAPI_DIR)/.stamp

$(ASYNCAPI_STAMP): $(ROOT)/tools/asyncapi/package.json $(ROOT)/tools/asyncapi/package-lock.json $(ROOT)/tools/asyncapi/validate.mjs
	mkdir -p $(ASYNCAPI_DIR)
	cp $^ $(ASYNCAPI_DIR)/
	cd $(ASYNCAPI_DIR) && npm ci --ignore-scripts --no-audit --no-fund --silent
	touch $@

.PHONY: lint-asyncapi
lint-asyncapi: $(ASYNCAPI_STAMP) ## Validate gen/asyncapi/shop.asyncapi.json with @asyncapi/parser (pinned; installed into .asyncapi/).
	node $(ASYNCAPI_DIR)/validate.mjs $(ROOT)/gen/asyncapi/shop.asyncapi.json
