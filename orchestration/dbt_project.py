"""The dbt project, as Dagster sees it: one `DbtProject` handle, the dbt of this environment, and
the resource that says where it is. `dagster dev` parses the project when it loads the code
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
    """Where the dbt project and its profile are. The marts step runs dbt inside its own process
    (`orchestration.dbt_runner`); `cli()` (dbt as a subprocess, for anything else) skips the dbt
    adapter dagster-dbt would first build in this process (1-3 s; only `fetch_column_metadata`
    and `fetch_row_counts` use it)."""

    def _initialize_dbt_core_adapter(self, args):  # dagster-dbt 0.29, pinned by uv.lock
        return None


def dbt_resource() -> WarehouseDbtResource:
    return WarehouseDbtResource(project_dir=DBT_PROJECT, dbt_executable=DBT_EXECUTABLE)
