## ---- benchmarks of the whole shop ------------------------------------------

.PHONY: bench-stack
bench-stack: ## The shop scaled out (gateways x instances on PostgreSQL, broker) under the journey; refuses at a 1-minute load above 1.5; env: scripts/bench-stack.sh.
	bash $(ROOT)/scripts/bench-stack.sh
