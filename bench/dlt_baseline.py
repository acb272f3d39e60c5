"""The dlt baseline of `bench/run.py` (dlt is a bench-only dependency: `uv sync --group bench`):
its filesystem source and `read_jsonl`, merged on EventId into DuckDB, as its docs show it.

    python bench/dlt_baseline.py LANDING WORKDIR [--parquet]

Prints the rows of the merged table. `--parquet` sets the loader file format to Parquet (its
fastest documented setting); without it, dlt's defaults.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("landing", type=Path)
    parser.add_argument("work", type=Path)
    parser.add_argument("--parquet", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    import dlt
    from dlt.sources.filesystem import filesystem, read_jsonl

    files = filesystem(bucket_url=args.landing.resolve().as_uri(), file_glob="omny/**/*.jsonl.gz")
    downloads = (files | read_jsonl()).with_name("downloads")
    downloads.apply_hints(primary_key="EventId", write_disposition="merge")
    pipeline = dlt.pipeline(pipeline_name="bench_dlt", destination=dlt.destinations.duckdb(str(args.work / "dlt.duckdb")),
                            dataset_name="omny", pipelines_dir=str(args.work / "pipelines"))
    pipeline.run(downloads, loader_file_format="parquet" if args.parquet else None)
    with pipeline.sql_client() as client:
        print(client.execute_sql("SELECT count(*) FROM downloads")[0][0])


if __name__ == "__main__":
    main()
