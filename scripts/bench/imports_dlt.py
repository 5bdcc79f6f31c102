#!/usr/bin/env python3
"""Peer of `tributary bench imports`: the same NDJSON file loaded into
PostgreSQL with dlt (PyPI), postgres destination.

The way dlt's docs show it: a resource that reads the file and yields the
parsed records (in pages of --page records, dlt's own advice for speed),
run by a pipeline into a dataset (a PostgreSQL schema) of the given
database. dlt infers the schema and, by default, unnests the nested lists
(offices, funding_rounds, ...) into child tables; the top-level table gets
one row per record. Prints one JSON object:
{"seconds": pipeline.run start to end, "extract": ..., "normalize": ...,
 "load": ..., "rows": rows of the top-level table}.

Setup: python3 -m venv VENV && VENV/bin/pip install "dlt[postgres]"
Run by: tributary bench imports --sql postgres://... --dlt-python VENV/bin/python
"""

import argparse
import json
import os
import sys
import time

from urllib.parse import urlsplit, urlunsplit

import dlt


def with_password(url):
    """dlt's postgres credentials require a password; a server with trust
    authentication (the bench rig) ignores it, so fill in a placeholder."""
    u = urlsplit(url)
    if u.password is not None or "@" not in u.netloc:
        return url
    user, host = u.netloc.rsplit("@", 1)
    return urlunsplit(u._replace(netloc=f"{user}:unused@{host}"))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--file", required=True, help="the NDJSON file")
    p.add_argument("--postgres", required=True, help="postgresql://user@host:port/db")
    p.add_argument("--dataset", required=True, help="dataset (schema) to create")
    p.add_argument("--table", default="companies")
    p.add_argument("--pipelines-dir", required=True, help="dlt's working directory")
    p.add_argument("--page", type=int, default=1000, help="records per yielded page")
    args = p.parse_args()

    # No arguments on the resource: dlt fills a resource's arguments from
    # its config and the environment (a `path` argument would get $PATH).
    @dlt.resource(name=args.table, write_disposition="append")
    def records():
        batch = []
        with open(args.file, "rb") as f:
            for line in f:
                if line.strip():
                    batch.append(json.loads(line))
                    if len(batch) >= args.page:
                        yield batch
                        batch = []
        if batch:
            yield batch

    pipeline = dlt.pipeline(
        pipeline_name="tributary_bench_imports",
        destination=dlt.destinations.postgres(credentials=with_password(args.postgres)),
        dataset_name=args.dataset,
        pipelines_dir=args.pipelines_dir,
        progress="log" if os.environ.get("DLT_PROGRESS") else None,
    )
    started = time.perf_counter()
    pipeline.extract(records())
    extracted = time.perf_counter()
    pipeline.normalize()
    normalized = time.perf_counter()
    pipeline.load()
    loaded = time.perf_counter()
    with pipeline.sql_client() as client:
        rows = client.execute_sql(f"SELECT count(*) FROM {args.table}")[0][0]
    print(
        json.dumps(
            {
                "seconds": loaded - started,
                "extract": extracted - started,
                "normalize": normalized - extracted,
                "load": loaded - normalized,
                "rows": rows,
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
