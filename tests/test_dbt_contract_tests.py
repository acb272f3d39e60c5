"""The generic tests mart contracts compile to (dbt_project/tests/generic/contract_tests.sql), run by
dbt on a one-model project: what a contract says reaches the SQL as a value, never as SQL text."""

import json
import shutil
import subprocess

import yaml

from orchestration.dbt_project import DBT_EXECUTABLE, DBT_PROJECT_DIR


def test_a_pattern_with_a_quote_is_a_string_literal(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "tests" / "generic").mkdir(parents=True)
    shutil.copy(DBT_PROJECT_DIR / "tests" / "generic" / "contract_tests.sql", tmp_path / "tests" / "generic")
    (tmp_path / "dbt_project.yml").write_text(yaml.safe_dump({
        "name": "contract_tests", "version": "1.0.0", "config-version": 2, "profile": "contract_tests",
        "flags": {"send_anonymous_usage_stats": False}}))
    (tmp_path / "profiles.yml").write_text(yaml.safe_dump({"contract_tests": {"target": "dev", "outputs": {
        "dev": {"type": "duckdb", "path": str(tmp_path / "t.duckdb"), "threads": 1}}}}))
    (tmp_path / "models" / "codes.sql").write_text(
        "select * from (values ('it''s-1'), ('its-2'), (null)) as t(code)")
    (tmp_path / "models" / "_codes.yml").write_text(yaml.safe_dump({"version": 2, "models": [{
        "name": "codes", "columns": [{"name": "code", "data_tests": [
            {"matches_pattern": {"arguments": {"pattern": r"^it's-\d$"}}}]}]}]}))

    subprocess.run([DBT_EXECUTABLE, "build", "--project-dir", str(tmp_path), "--profiles-dir", str(tmp_path)],
                   cwd=tmp_path, capture_output=True, text=True)

    (result,) = [r for r in json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
                 if r["unique_id"].startswith("test.")]
    # the quote did not end the literal: the test ran, and only the row the pattern misses fails it
    assert (result["status"], result["failures"]) == ("fail", 1), result["message"]
