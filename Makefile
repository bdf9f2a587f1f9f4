# Chat4All: `make run` serves the embedded profile, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run up up-ha lint test test-fast services-up services-down clean clients web

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

run: $(STAMP)
	$(BIN)/chat4all serve all

# The production profile locally: real servers, 2 API processes, 2 routers.
up: $(STAMP)
	./scripts/up.sh

# The HA profile: every engine replicated ×3 with automatic failover, 2 of every Chat4All process.
up-ha: $(STAMP)
	./scripts/up.sh --ha

# The enforced rules: ruff, mypy and the import contracts (docs/architecture.md, Enforced rules).
lint: $(STAMP)
	./scripts/lint.sh

# Checks the rules, brings up the real servers the tests use (scripts/services.sh), then runs every test.
test: lint clients
	./scripts/test.sh

# Node.js and the pinned client generators of tests/clients (the generated-clients test).
clients:
	./scripts/clients.sh

# The rules, then only the tests that need no server besides Chat4All itself.
test-fast: lint
	$(BIN)/pytest -m "not postgres" -q

# Rebuilds the web app (web/, TypeScript + Vite) into the package (src/chat4all/api/static). The
# build is committed, so `make run` needs no Node.js; Node.js and npm come from Debian if missing.
web:
	command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm; }
	cd web && npm ci --no-audit --no-fund && npm run build

services-up:
	./scripts/services.sh up

services-down:
	./scripts/services.sh down

clean:
	rm -rf $(VENV) data .pytest_cache
