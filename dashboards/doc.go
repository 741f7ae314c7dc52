// Package dashboards owns Periscope's Grafana dashboards: Golden signals,
// Flows and verdicts, Policy and Node health, written as Go with Grafana's
// typed builders (grafana-foundation-sdk) over the names the metric model
// (collector/sink/metrics) and the ClickHouse store (collector/sink/clickhouse)
// define, and generated into grafana/dashboards/*.json for Grafana's
// provisioning (grafana/provisioning). `go generate ./dashboards` rewrites the
// JSON; a test fails while it is stale.
//
// Every query runs in a test against what Periscope really produces: the
// PromQL through a real Prometheus scraping a real collector with real
// traffic, the SQL, its Grafana macros expanded as the ClickHouse plugin
// expands them, against a real ClickHouse holding real flows.
//
// The package must not type a metric, label, table or column name of its
// own: it imports them (names.go lists the columns, checked against the
// store's). It serves nothing and is not linked into the binary.
package dashboards

//go:generate go run ./gen
