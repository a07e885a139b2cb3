# Two commands do all the set-up on a fresh clone: `make run` and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
IDP_HOST ?= 127.0.0.1
IDP_PORT ?= 8000

.PHONY: run test install clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@# pysaml2 signs and verifies SAML messages by running the xmlsec1 program.
	@command -v xmlsec1 >/dev/null || { \
		command -v apt-get >/dev/null || { echo "Error: xmlsec1 is missing and apt-get is not available; install xmlsec1 (the xmlsec1 package) and run make again." >&2; exit 1; }; \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq && $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -qq xmlsec1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# The issuer follows IDP_HOST/IDP_PORT unless IDP_ISSUER says otherwise (e.g. behind a proxy).
run: export IDP_ISSUER ?= http://$(IDP_HOST):$(IDP_PORT)
run: install
	$(BIN)/flask --app wsgi setup
	$(BIN)/gunicorn --bind "$(IDP_HOST):$(IDP_PORT)" --workers 2 --threads 4 --access-logfile - wsgi:app

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
