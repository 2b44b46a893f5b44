# One entry point for set-up, tests, demo and benches. `make test` works on a
# fresh machine: Debian packages (as root), virtualenv, C build, linters, tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := tshark openoverlayrouter tcpdump iperf3 iproute2 iputils-ping systemd ethtool
NATIVE := $(wildcard native/*.c native/*.h native/*.py)

.PHONY: test demo bench lint typecheck deps clean

test: deps $(VENV)/.installed
	$(PY) -m ruff check lispd tests bench native
	$(PY) -m mypy
	$(PY) -m pytest --hypothesis-show-statistics

demo: deps $(VENV)/.installed
	$(PY) -m lispd demo

# Micro-benches, then the data-plane throughput bench (root: namespaces, iperf3).
bench: deps $(VENV)/.installed
	$(PY) bench/checksum.py
	if [ -f bench/lookup.py ]; then $(PY) bench/lookup.py; fi
	$(PY) bench/mapserver.py
	$(PY) bench/convergence.py
	$(PY) bench/throughput.py

# Debian packages the interop tests use; installed once, only when missing.
deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -q && \
	    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  else \
	    echo "not root: cannot install$$missing; the tests that need them will say so"; \
	  fi; \
	fi

$(VENV)/.installed: pyproject.toml setup.py $(NATIVE)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -c 'import lispd.native'
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info lispd/_native*.so lispd/_native.c
