# Two commands do all set-up on a fresh machine: `make bench` and `make test`.
# The first run creates .venv and installs torch + this package; later runs reuse it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.resnet-bench-installed

# torch wheels that exist for Python 3.11 on this project's machines (x86_64: CUDA build from
# the local wheel cache; aarch64: CPU build). Override with `make TORCH_PKGS="torch==X ..."`.
ifeq ($(shell uname -m),aarch64)
TORCH_PKGS ?= torch==2.9.1 torchvision==0.24.1
else
TORCH_PKGS ?= torch==2.14.1 torchvision==0.29.1
endif

.PHONY: bench test venv clean-venv browser postgres

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PKGS)
	$(BIN)/python -m pip install -q -e '.[test,ray,db]'
	@# the backends' runtimes (ONNX Runtime, OpenVINO + NNCF, torchao for PT2E int8): where they install;
	@# where one does not, its rows are skipped with the reason and its tests skip themselves
	$(BIN)/python -m pip install -q -e '.[onnx,openvino,int8]' || echo "note: a backend runtime did not install; its rows and tests are skipped"
	@touch $(STAMP)

# The main job: the quick sweep on this machine's best device, written under results/runs/.
bench: $(STAMP)
	$(BIN)/resnet-bench run --preset quick

# The test suite (GPU tests skip themselves without CUDA) on two workers, then the tests that
# assert on timings alone (marker serial), then the performance gates:
# the exact params/MACs gate blocks; the speed gate against the previous commit only reports
# (a rare false alarm must not block a submission; a missing HEAD~1 prints a line and goes on).
test: $(STAMP) browser postgres
	$(BIN)/python -m pytest -q -n 2 -m "not serial"
	$(BIN)/python -m pytest -q -m serial
	$(BIN)/python -m bench check --exact
	$(BIN)/python -m bench check --speed --base-ref HEAD~1 --models resnet18 --image-sizes 32 --rounds 6 \
		--report-only --quiet || echo "speed gate report: could not run (ignored)"

# Best effort, never fails the build: the browser test opens the HTML report in headless Chromium.
# Where chromium is missing and this shell can install it (root and apt-get: Debian's package),
# install it; elsewhere say so, and the test skips itself with the reason.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser test (apt-get)"; \
	    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null 2>&1 && \
	        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; }; } \
	    || echo "note: could not install chromium; the browser test will be skipped"; \
	  else \
	    echo "note: no chromium, and no root apt-get to install it; the browser test will be skipped"; \
	  fi; }

# Best effort, never fails the build: the PostgreSQL tests of the results database start a real
# server (Debian's postgresql: initdb + pg_ctl in a temporary directory, a unix socket only).
# Where it is missing and this shell can install it (root and apt-get), install it; elsewhere
# say so, and those tests skip themselves with the reason.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's postgresql for the results-database tests (apt-get)"; \
	    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null 2>&1 && \
	        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1; }; } \
	    || echo "note: could not install postgresql; the PostgreSQL tests will be skipped"; \
	  else \
	    echo "note: no PostgreSQL server, and no root apt-get to install it; the PostgreSQL tests will be skipped"; \
	  fi; }

clean-venv:
	rm -rf $(VENV)
