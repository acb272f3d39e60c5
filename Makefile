# Two commands on a fresh machine (Python 3.11 and make): `make demo` and `make test`.
UV_VERSION := 0.13.8
BOOT := .venv-boot
UV := $(BOOT)/bin/uv
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install demo test dev docs sql bench clean

$(UV):
	python3 -m venv $(BOOT)
	$(BOOT)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

install: $(UV)  ## the pinned environment, from uv.lock
	$(UV) sync --frozen --quiet
	@mkdir -p $(DAGSTER_HOME) && test -f $(DAGSTER_HOME)/dagster.yaml || printf 'telemetry:\n  enabled: false\nconcurrency:\n  pools:\n    default_limit: 1\n' > $(DAGSTER_HOME)/dagster.yaml

demo: install  ## a day of sample exports into data/landing, backfilled into data/lake
	$(UV) run python -m orchestration demo

test: install  ## the whole suite (dbt, Dagster and an S3 API server on loopback, for real)
	env -u DAGSTER_HOME $(UV) run pytest

dev: install  ## the Dagster UI on http://127.0.0.1:3000
	$(UV) run dagster dev -w workspace.yaml

sql: install  ## a query on the marts, read-only: make sql Q="select ..."  (no Q: list the tables)
	$(UV) run python -m orchestration sql "$$Q"

docs: install  ## dbt docs of the marts (after `make demo`), served on http://127.0.0.1:8080
	$(UV) run python -m orchestration dbt docs generate
	$(UV) run python -m orchestration dbt docs serve --port 8080

bench: install  ## 2 M Omny events over 48 hours: time and peak memory (see bench/README.md)
	$(UV) run python bench/omny_bench.py

clean:
	rm -rf data .dagster_home
