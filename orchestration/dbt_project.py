"""The dbt project, as Dagster sees it: one `DbtProject` handle, the dbt of this environment, and
the resource that runs it. `dagster dev` parses the project when it loads the code
(`prepare_if_dev`); everywhere else the manifest is prepared at install (`make install` runs
`dagster-dbt project prepare-and-package --file orchestration/dbt_project.py`)."""

from __future__ import annotations

import sys
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"
# The dbt of this environment (dagster-dbt would look on PATH).
DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt")) if Path(sys.executable).with_name("dbt").exists() else "dbt"
DBT_PROJECT = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
DBT_PROJECT.prepare_if_dev()


class WarehouseDbtResource(DbtCliResource):
    """dagster-dbt's `DbtCliResource` without the dbt adapter it builds in this process before
    every invocation (it imports dbt and parses dbt's ~500 built-in macros: 1-3 s a step, before
    dbt even starts). Only `fetch_column_metadata` and `fetch_row_counts` use that adapter, and
    the marts step calls neither; dbt itself, in its subprocess, is untouched (bench/README.md,
    "Marts: where the time goes")."""

    def _initialize_dbt_core_adapter(self, args):  # dagster-dbt 0.29, pinned by uv.lock
        return None


def dbt_resource() -> WarehouseDbtResource:
    return WarehouseDbtResource(project_dir=DBT_PROJECT, dbt_executable=DBT_EXECUTABLE)
