"""schemathesis hooks for scripts/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

Some routes speak NDJSON (application/x-ndjson), documented with the schema of one line:
the ingest routes of docs and shop take such bodies, the chat jobs (import, backup, restore)
answer with progress lines and one outcome line. schemathesis reads neither on its own, so:

- generated request bodies go out as one JSON value a line (a list: one line per item);
- a response body is read as its last line (the outcome), which `response_schema_conformance`
  validates; every line must be JSON;
- the check `ndjson_lines_conformance` validates each earlier line against the same schema.
"""

import json

import schemathesis
from schemathesis.core.transport import Response

NDJSON = "application/x-ndjson"


@schemathesis.serializer(NDJSON)
def ndjson_body(ctx, value):
    if isinstance(value, bytes):
        return value
    items = value if isinstance(value, list) else [value]
    return "".join(json.dumps(item) + "\n" for item in items).encode()


def _lines(content):
    return [line for line in content.split(b"\n") if line.strip()]


@schemathesis.deserializer(NDJSON)
def ndjson_response(ctx, response):
    lines = _lines(response.content)
    if not lines:
        raise ValueError("empty NDJSON body: no outcome line")
    values = []
    for i, line in enumerate(lines, 1):
        try:
            values.append(json.loads(line))
        except ValueError as exc:
            raise ValueError(f"NDJSON line {i} is not JSON: {exc}: {line[:200]!r}") from exc
    return values[-1]


def _is_ndjson(response):
    return any(NDJSON in v for v in response.headers.get("content-type", []))


@schemathesis.check
def ndjson_lines_conformance(ctx, response, case):
    """Every line of an NDJSON response but the last (validated as the body) matches the schema."""
    if not _is_ndjson(response):
        return None
    lines = _lines(response.content)
    for line in lines[:-1]:
        one = Response(
            status_code=response.status_code,
            headers=response.headers,
            content=line,
            request=response.request,
            elapsed=response.elapsed,
            verify=response.verify,
        )
        case.operation.validate_response(one, case=case)
    return None
