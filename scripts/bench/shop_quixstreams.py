#!/usr/bin/env python3
"""Peer of `tributary bench shop`: the shop filter on quixstreams.

Consumes the bench's products topic (JSON products keyed by product_id),
keeps the products whose name contains --needle (ignoring case, as the
shop's substring filter does), produces them unchanged to the output topic,
and stops after --count input records. Written the way the quixstreams docs
show a filter: a StreamingDataFrame from a JSON topic, a filter step, then
`to_topic`. Prints one JSON object:
{"seconds": first poll to the end (output flushed), "emitted": products
produced, "consumed": records read}.

Setup: python3 -m venv VENV && VENV/bin/pip install quixstreams==3.28.1
Run by: tributary bench shop --kafka kafka://HOST:PORT --quix-python VENV/bin/python
"""

import argparse
import json
import shutil
import sys
import tempfile
import time

from quixstreams import Application

import quix_tansu  # noqa: F401  (tansu workaround, see the module)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--broker", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--needle", required=True)
    args = p.parse_args()

    # Stateless, but quixstreams still opens a state directory: keep it out of the cwd.
    state_dir = tempfile.mkdtemp(prefix="bench-shop-quix-")
    app = Application(
        broker_address=args.broker,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=state_dir,
        processing_guarantee="at-least-once",
        loglevel="WARNING",
    )
    source = app.topic(args.input, value_deserializer="json", key_deserializer="str")
    sink = app.topic(args.output, value_serializer="json", key_serializer="str")
    needle = args.needle.lower()
    seen = {"n": 0, "emitted": 0}

    def count_in(_value):
        seen["n"] += 1
        if seen["n"] >= args.count:
            app.stop()

    def count_out(_value):
        seen["emitted"] += 1

    sdf = app.dataframe(source)
    sdf = sdf.update(count_in)
    sdf = sdf.filter(lambda product: needle in product["name"].lower())
    sdf = sdf.update(count_out)
    sdf.to_topic(sink)
    started = time.monotonic()
    app.run()
    ended = time.monotonic()
    shutil.rmtree(state_dir, ignore_errors=True)
    json.dump(
        {"seconds": ended - started, "emitted": seen["emitted"], "consumed": seen["n"]},
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
