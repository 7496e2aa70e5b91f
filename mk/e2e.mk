# Browser test of the chat page: headless Chromium driven by playwright-core (installed by `make deps`).
test-e2e: build
	rm -f tests/e2e/artifacts/failure-*.png
	cd tests/e2e && node --test
