# The workbench's two commands (see README.md):
#   make report   run the notebooks headless on the shipped data into reports/
#   make test     run the tests
# Each creates the virtual environment and installs everything on first use.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PARAMS ?= reports/params/default.yaml

export MUJOCO_GL ?= egl
export SDL_VIDEODRIVER ?= dummy

.PHONY: install browser report report-full test clean-venv

install: $(STAMP)

# Stage 1 resolves normally; stage 2 installs dsrl, safety-gymnasium, bullet-safety-gym and
# metadrive-simulator with --no-deps, because their metadata pins cannot install on Python 3.11
# (see the comment at the top of requirements-nodeps.txt). Their real dependencies are pinned
# in stage 1.
$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required, found " + sys.version)'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -c "import tcdp_lib.data.compat as c; print('simulator families:', c.apply())"
	touch $(STAMP)

report: install
	$(VENV)/bin/tcdp report --params $(PARAMS)

report-full: install
	$(VENV)/bin/tcdp report --params reports/params/full.yaml

test: install browser
	$(PY) -m pytest tests -q

# tests/test_panel_browser.py drives JupyterLab in headless Chromium through chromedriver, both
# Debian's packages (nothing downloads a browser at run time). Installed here when missing and
# run as root (CI); otherwise a note, and the test skips outside CI.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium and chromium-driver (the browser test)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	else \
		echo "note: the browser test needs /usr/bin/chromium and /usr/bin/chromedriver" \
		     "(sudo apt-get install chromium chromium-driver); without them it is skipped outside CI"; \
	fi

clean-venv:
	rm -rf $(VENV)
