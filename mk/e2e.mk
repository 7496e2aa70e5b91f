# Browser test of the chat page: headless Chromium driven by playwright-core.
test-e2e: build
	cd tests/e2e && npm ci --no-audit --no-fund --silent && node --test
