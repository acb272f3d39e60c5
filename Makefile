# Two commands on a fresh machine (Python 3.11 and make): `make demo` and `make test`.
UV_VERSION := 0.13.8
BOOT := .venv-boot
UV := $(BOOT)/bin/uv
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install datacontract demo test contracts-test dev docs sql bench clean

$(UV):
	python3 -m venv $(BOOT)
	$(BOOT)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Bytecode compiled at install: every process (dbt's included) starts without compiling its imports,
# which it cannot cache where PYTHONDONTWRITEBYTECODE is set. Inexact: the bench group `make bench`
# adds (dlt) stays, where another target's install would remove it under a running bench.
install: $(UV)  ## the pinned environment, from uv.lock, and the dbt project's manifest
	$(UV) sync --frozen --quiet --compile-bytecode --inexact
	@$(MAKE) --no-print-directory --silent $(DBT_MANIFEST)
	@mkdir -p $(DAGSTER_HOME) && test -f $(DAGSTER_HOME)/dagster.yaml || cp orchestration/dagster_instance.yaml $(DAGSTER_HOME)/dagster.yaml

# Parsed again only when what dbt parses changed: `dbt parse` took ~7 s of every `make sql`.
DBT_MANIFEST := dbt_project/target/manifest.json
DBT_INPUTS := $(shell find dbt_project/models dbt_project/macros dbt_project/tests dbt_project/seeds dbt_project/snapshots \
	-type f 2>/dev/null) dbt_project/dbt_project.yml dbt_project/profiles.yml orchestration/dbt_project.py uv.lock
$(DBT_MANIFEST): $(DBT_INPUTS)
	$(UV) run --frozen dagster-dbt project prepare-and-package --file orchestration/dbt_project.py >/dev/null
	@touch $@

# datacontract-cli in its own environment (its dependencies clash with ours), pinned by its own uv.lock.
DATACONTRACT_DIR := data_contracts/datacontract-cli
DATACONTRACT_ENV := .venv-datacontract
DATACONTRACT := $(DATACONTRACT_ENV)/bin/datacontract

$(DATACONTRACT): $(DATACONTRACT_DIR)/pyproject.toml $(DATACONTRACT_DIR)/uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(CURDIR)/$(DATACONTRACT_ENV) $(UV) sync --frozen --quiet --compile-bytecode --project $(DATACONTRACT_DIR)
	@touch $@

datacontract: $(DATACONTRACT)  ## datacontract-cli (the ODCS tool) in .venv-datacontract, from data_contracts/datacontract-cli/uv.lock

demo: install  ## a day of sample exports into data/landing, backfilled into data/lake
	$(UV) run python -m orchestration demo

test: install datacontract  ## the whole suite (dbt, Dagster and an S3 API server on loopback, for real)
	env -u DAGSTER_HOME $(UV) run pytest

contracts-test: install datacontract  ## after `make demo`: datacontract lint every contract, test the marts and the lake against them
	$(UV) run python -m orchestration contracts --datacontract

dev: install  ## the Dagster UI on http://127.0.0.1:3000
	$(UV) run dagster dev -w workspace.yaml

sql: install  ## a query on the marts, read-only: make sql Q="select ..."  (no Q: list the tables)
	$(UV) run python -m orchestration sql "$$Q"

docs: install  ## dbt docs of the marts (after `make demo`), served on http://127.0.0.1:8080
	$(UV) run python -m orchestration dbt docs generate
	$(UV) run python -m orchestration dbt docs serve --port 8080

bench: install  ## ours against DuckDB and dlt baselines on the same files (EVENTS=200000 by default; TENFOLD=1 adds 10x; HISTORY_DAYS=7 by default; REPEAT=3 takes the floors' and cores' medians) into bench/results/latest.{json,md}
	$(UV) sync --frozen --quiet --compile-bytecode --group bench
	$(UV) run --frozen --group bench python bench/run.py --events $(or $(EVENTS),200000) $(if $(TENFOLD),--tenfold) $(if $(HISTORY_DAYS),--history-days $(HISTORY_DAYS)) $(if $(REPEAT),--repeat $(REPEAT))

clean:
	rm -rf data .dagster_home
