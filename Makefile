# Two commands matter on a fresh clone: `make demo` and `make test`. Both build .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint venv clean system-deps serve openapi fuzz fuzz-api soak

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/refundlens demo --out demo-report

# System packages the tests need, installed only when missing: a CJK font (OCR tests, Chinese in
# the PDF report), Chromium (browser tests, PDF rendering) and poppler (PDF checks). Set
# REFUNDLENS_SKIP_SYSTEM_DEPS=1 where apt-get is not available (those tests then skip, saying so).
SYSTEM_PACKAGES := fonts-wqy-microhei chromium poppler-utils
system-deps:
	@if [ -z "$$REFUNDLENS_SKIP_SYSTEM_DEPS" ] && { ! fc-list 2>/dev/null | grep -qi "WenQuanYi" || ! command -v chromium >/dev/null || ! command -v pdftoppm >/dev/null; }; then \
		echo "installing $(SYSTEM_PACKAGES)"; \
		apt-get install -y -q -o DPkg::Lock::Timeout=300 $(SYSTEM_PACKAGES) >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null && apt-get install -y -q -o DPkg::Lock::Timeout=300 $(SYSTEM_PACKAGES) >/dev/null; }; \
	fi

test: $(STAMP) system-deps
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m bench.run_all

# The claims service on the embedded default (SQLite + in-process tasks in ./refundlens-data).
serve: $(STAMP)
	$(VENV)/bin/refundlens serve

# Soak test with faults on the real components (PostgreSQL, Redis, the API, two Celery workers,
# a webhook receiver; bench/soak.py): SOAK_SECONDS of load at SOAK_RATE claims/s while a worker is
# SIGKILLed, Redis restarted, PostgreSQL stopped for 20 s and the webhook hangs; then every claim
# is checked. Under 10 minutes; writes bench/results/soak.md. Not part of `make test` or CI.
SOAK_SECONDS ?= 300
SOAK_RATE ?= 0.5
soak: $(STAMP)
	$(PY) -m bench.soak --duration $(SOAK_SECONDS) --rate $(SOAK_RATE)

# Regenerate docs/openapi.json after an API change (a test compares it with the running API).
openapi: $(STAMP)
	$(PY) -c "import json, tempfile; from refundlens.config import Settings; from refundlens.service import create_app; print(json.dumps(create_app(Settings(data_dir=tempfile.mkdtemp())).openapi(), indent=1, sort_keys=True, ensure_ascii=False))" > docs/openapi.json

# Coverage-guided fuzzing of decoding, metadata and the detectors that read them (fuzz/media.py),
# then schema-driven fuzzing of the API over HTTP with every role's key (fuzz/api.py), then a
# browser filling every form of the web page with hostile text (fuzz/web.py). atheris and
# schemathesis are installed on demand, not dependencies. Failing cases land in fuzz/crashes/.
FUZZ_SECONDS ?= 300
FUZZ_API_SECONDS ?= $(FUZZ_SECONDS)
FUZZ_WEB_SECONDS ?= 120
fuzz: $(STAMP) system-deps
	$(PY) -m pip install --quiet 'atheris>=2.3,<4'
	$(PY) -m fuzz.media --seconds $(FUZZ_SECONDS)
	$(MAKE) fuzz-api
	$(PY) -m fuzz.web --seconds $(FUZZ_WEB_SECONDS)

fuzz-api: $(STAMP)
	$(PY) -m pip install --quiet 'schemathesis>=4.32,<5'
	$(PY) -m fuzz.api --seconds $(FUZZ_API_SECONDS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench training fuzz
	$(VENV)/bin/ruff format --check src tests bench training fuzz
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) demo-report test-artifacts refundlens-data
