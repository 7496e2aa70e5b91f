# A bounded long mixed load (fanout, connection churn, slow consumers) against one daemon: fails on any loss,
# unbounded RSS growth, unexpected error counters or connections that do not drain. SOAK_SECONDS=60 default.
.PHONY: soak
SOAK_SECONDS ?= 60
soak: build
	python3 benches/soak.py --seconds $(SOAK_SECONDS)
