# Convenience wrappers; the scripts work without make (a minimal Debian has no make).
.PHONY: run test
run:
	./scripts/run
test:
	./scripts/test
