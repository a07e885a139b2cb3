# Two commands do all the set-up on a fresh clone: `make run` and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
IDP_HOST ?= 127.0.0.1
IDP_PORT ?= 8000

.PHONY: run test install clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@# pysaml2 signs and verifies SAML messages by running the xmlsec1 program (required).
	@# tests/test_browser.py drives Debian's Chromium; where it cannot be installed they skip.
	@missing=""; command -v xmlsec1 >/dev/null || missing="xmlsec1"; command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null; then \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); $$sudo apt-get update -qq; \
		for package in $$missing; do $$sudo apt-get install -y -qq $$package || echo "Warning: apt-get could not install $$package." >&2; done; \
	fi; \
	command -v xmlsec1 >/dev/null || { echo "Error: xmlsec1 is missing; install it (Debian package xmlsec1) and run make again." >&2; exit 1; }; \
	command -v chromium >/dev/null || echo "Note: no chromium, so the browser tests will be skipped; install Debian's chromium package or set IDP_CHROMIUM." >&2
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
