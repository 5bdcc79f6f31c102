#!/usr/bin/env python3
"""Peer of `tributary bench docs`: the documents merge on quixstreams.

Consumes the bench's input topic (JSON updates keyed by url), merges each
update into the url's state (quixstreams' RocksDB state store, backed by its
changelog topic), produces the merged document to the output topic when the
state changed, and stops after --count updates. Prints one JSON object:
{"seconds": first poll to the end, "emitted": documents produced}.

The merge is the documents spec's rule, as in
crates/tributary-documents/src/domain/merge.rs: text and fetch_time from the
largest (fetch_time, text); pub_date and first_fetch_time from the smallest
(first known fetch time, pub_date).

Setup: python3 -m venv VENV && VENV/bin/pip install quixstreams==3.28.1
Run by: tributary bench docs --kafka kafka://HOST:PORT --quix-python VENV/bin/python
"""

import argparse
import json
import sys
import time

from quixstreams import Application

import quix_tansu  # noqa: F401  (tansu workaround, see the module)


def first_known(d):
    f = d.get("FirstFetchTime") or 0
    t = d.get("FetchTime") or 0
    return t if f == 0 or f > t else f


def normalized(d):
    return {
        "Url": d["Url"],
        "PubDate": d.get("PubDate") or 0,
        "FetchTime": d.get("FetchTime") or 0,
        "Text": d.get("Text") or "",
        "FirstFetchTime": first_known(d),
    }


def merge(a, b):
    latest = b if (b["FetchTime"], b["Text"]) > (a["FetchTime"], a["Text"]) else a
    first = b if (first_known(b), b["PubDate"]) < (first_known(a), a["PubDate"]) else a
    return {
        "Url": a["Url"],
        "PubDate": first["PubDate"],
        "FetchTime": latest["FetchTime"],
        "Text": latest["Text"],
        "FirstFetchTime": first_known(first),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--broker", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--state-dir", required=True)
    args = p.parse_args()

    app = Application(
        broker_address=args.broker,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        processing_guarantee="at-least-once",
        loglevel="WARNING",
    )
    source = app.topic(args.input, value_deserializer="json", key_deserializer="str")
    sink = app.topic(args.output, value_serializer="json", key_serializer="str")
    seen = {"n": 0, "emitted": 0, "start": None}

    def step(value, state):
        if seen["start"] is None:
            seen["start"] = time.monotonic()
        seen["n"] += 1
        if seen["n"] >= args.count:
            app.stop()
        update = normalized(value)
        prior = state.get("doc")
        merged = update if prior is None else merge(prior, update)
        if merged == prior:
            return None
        state.set("doc", merged)
        seen["emitted"] += 1
        return merged

    sdf = app.dataframe(source)
    sdf = sdf.apply(step, stateful=True)
    sdf = sdf.filter(lambda v: v is not None)
    sdf.to_topic(sink)
    started = time.monotonic()
    app.run()
    ended = time.monotonic()
    json.dump({"seconds": ended - started, "emitted": seen["emitted"], "consumed": seen["n"]}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
