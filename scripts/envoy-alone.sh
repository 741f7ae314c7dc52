#!/usr/bin/env bash
# envoy-alone.sh measures Envoy by itself, outside Periscope: a minimal
# static bootstrap (one listener, the router, one static cluster; no xDS, no
# access log, no redirect, no RBAC) on loopback in front of a Go hello-world
# HTTP server, against the same server direct. It prints req/s (wrk -t2 -c32
# -d5s, keep-alive) and Envoy's CPU per request, alternating the two ROUNDS
# times. It is the ceiling of what any Periscope configuration of this Envoy
# can reach on this machine (docs/BENCHMARKS.md, "Envoy alone").
# Usage: scripts/envoy-alone.sh [rounds]   (needs wrk, go and Envoy)
# ENVOY_IO_URING=1 gives Envoy the io_uring socket interface instead of epoll.
set -euo pipefail

rounds=${1:-3}
envoy=${ENVOY:-/opt/periscope/envoy-venv/bin/envoy}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT

cat >"$dir/main.go" <<'GO'
package main

import (
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("hello\n")) })
	panic(http.ListenAndServe(os.Args[1], nil))
}
GO
(cd "$dir" && go mod init envoyalone >/dev/null 2>&1 && go build -o server .)

cat >"$dir/envoy.yaml" <<'YAML'
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 19901}}
static_resources:
  listeners:
  - name: alone
    address: {socket_address: {address: 127.0.0.1, port_value: 19900}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: alone
          generate_request_id: false
          route_config:
            virtual_hosts:
            - {name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: server}}]}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
              dynamic_stats: false
              suppress_envoy_headers: true
  clusters:
  - name: server
    type: STATIC
    load_assignment:
      cluster_name: server
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 19902}}}
YAML
if [[ ${ENVOY_IO_URING:-} == 1 ]]; then
	cat >>"$dir/envoy.yaml" <<'YAML'
bootstrap_extensions:
- name: envoy.extensions.network.socket_interface.default_socket_interface
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.network.socket_interface.v3.DefaultSocketInterface
    io_uring_options: {}
default_socket_interface: envoy.extensions.network.socket_interface.default_socket_interface
YAML
fi

"$dir/server" 127.0.0.1:19902 &
"$envoy" -c "$dir/envoy.yaml" --concurrency 2 -l error --disable-hot-restart >/dev/null 2>&1 &
epid=$!
sleep 2
if [[ ${ENVOY_IO_URING:-} == 1 ]] && ! ls -l "/proc/$epid/fd" | grep -q io_uring; then
	echo "envoy-alone: Envoy opened no io_uring" >&2
	exit 1
fi

rate() { wrk -t2 -c32 -d5s "$1" | awk '/Requests\/sec/ {print $2}'; }
cpu() { awk '{print $14 + $15}' "/proc/$epid/stat"; }
hz=$(getconf CLK_TCK)
for i in $(seq "$rounds"); do
	direct=$(rate http://127.0.0.1:19902/)
	before=$(cpu)
	proxied=$(rate http://127.0.0.1:19900/)
	after=$(cpu)
	awk -v d="$direct" -v p="$proxied" -v t="$((after - before))" -v hz="$hz" -v i="$i" 'BEGIN {
		printf "round %d: direct %.0f req/s, Envoy %.0f req/s, ratio %.2f, Envoy %.0f µs CPU/request\n",
			i, d, p, p / d, t / hz * 1e6 / (p * 5) }'
done
