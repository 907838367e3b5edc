# Two commands matter on a fresh clone: `make demo` and `make test`. Both build .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint venv clean system-deps serve openapi

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/refundlens demo --out demo-report

# System packages the tests need (a CJK font to render "AI生成" for the OCR test); installed
# only when missing. Set REFUNDLENS_SKIP_SYSTEM_DEPS=1 where apt-get is not available.
system-deps:
	@if [ -z "$$REFUNDLENS_SKIP_SYSTEM_DEPS" ] && ! fc-list 2>/dev/null | grep -qi "WenQuanYi"; then \
		echo "installing fonts-wqy-microhei (CJK font for the OCR tests)"; \
		apt-get install -y -q fonts-wqy-microhei >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null && apt-get install -y -q fonts-wqy-microhei >/dev/null; }; \
	fi

test: $(STAMP) system-deps
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m bench.run_all

# The claims service on the embedded default (SQLite + in-process tasks in ./refundlens-data).
serve: $(STAMP)
	$(VENV)/bin/refundlens serve

# Regenerate docs/openapi.json after an API change (a test compares it with the running API).
openapi: $(STAMP)
	$(PY) -c "import json, tempfile; from refundlens.config import Settings; from refundlens.service import create_app; print(json.dumps(create_app(Settings(data_dir=tempfile.mkdtemp())).openapi(), indent=1, sort_keys=True, ensure_ascii=False))" > docs/openapi.json

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) demo-report test-artifacts refundlens-data
