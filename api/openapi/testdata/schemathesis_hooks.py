"""Schemathesis hooks for Periscope's contract test (api/openapi).

GET /api/v1/flows?follow streams live flows until the client leaves: a
request with follow never ends, so the fuzzer is given the document without
that parameter. The Go test checks follow's refusals itself.
"""

import schemathesis


@schemathesis.hook
def before_load_schema(ctx, raw_schema):
    flows = raw_schema.get("paths", {}).get("/api/v1/flows", {}).get("get")
    if flows:
        flows["parameters"] = [p for p in flows.get("parameters", []) if p.get("name") != "follow"]
