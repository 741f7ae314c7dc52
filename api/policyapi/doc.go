// Package policyapi is the wire form of the policy and identity API a
// collector serves (GET/POST /api/v1/policies, GET/DELETE
// /api/v1/policies/{namespace}/{name}, GET /api/v1/identities): its paths
// and the JSON bodies the collector and its clients (the CLI, the demo,
// tests) exchange. It holds types and paths only: it must not parse or
// judge policies (package enforcer/policy does) and must import nothing of
// Periscope's but api, so a client never links the daemon's packages.
package policyapi
