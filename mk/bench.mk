## ---- benchmarks of the whole shop ------------------------------------------

.PHONY: bench-stack
bench-stack: ## The shop scaled out (gateways x instances on PostgreSQL, broker) under the journey; refuses at a 1-minute load above 1.5; env: scripts/bench-stack.sh.
	bash $(ROOT)/scripts/bench-stack.sh

.PHONY: bench-live
bench-live: ## Live updates: event latency with 1 and 1,000 subscribers, memory per idle stream at 10,000, REST req/s with 1,000 streams open vs none; refuses at a 1-minute load above 1.5; env: scripts/bench-live.sh.
	bash $(ROOT)/scripts/bench-live.sh
