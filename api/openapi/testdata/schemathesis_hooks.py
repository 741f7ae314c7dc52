"""Schemathesis hooks for Periscope's contract test (api/openapi).

GET /api/v1/flows?follow and GET /api/v1/agent-events?follow stream until
the client leaves: a request with follow never ends, so the fuzzer is given
the document without that parameter. The Go test checks follow's refusals
itself.
"""

import schemathesis

FOLLOWED = ("/api/v1/flows", "/api/v1/agent-events")


@schemathesis.hook
def before_load_schema(ctx, raw_schema):
    for path in FOLLOWED:
        op = raw_schema.get("paths", {}).get(path, {}).get("get")
        if op:
            op["parameters"] = [p for p in op.get("parameters", []) if p.get("name") != "follow"]
