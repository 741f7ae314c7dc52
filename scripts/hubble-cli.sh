#!/usr/bin/env bash
# hubble-cli.sh builds the real hubble CLI, of the cilium version go.mod
# names, into bin/hubble, so the tests of Periscope's Hubble API
# (relay/hubble) can run it. The source is the cilium module itself: it
# cannot be `go install`ed at a version (its go.mod has replace directives),
# but it builds from the module's directory. It is idempotent: when
# bin/hubble already reports that version it changes nothing. HUBBLE_CLI_OUT
# builds somewhere else than bin/hubble.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
out=${HUBBLE_CLI_OUT:-$root/bin/hubble}

log() { echo "hubble-cli: $*"; }

if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi

mod=github.com/cilium/cilium
version=$(go list -m -f '{{.Version}}' "$mod")

# `hubble version` prints e.g. "hubble v1.20.2 compiled with go1.26 on linux/amd64".
if [ -x "$out" ] && have=$("$out" version 2>/dev/null) && [ "$(awk '{print $2}' <<<"$have")" = "$version" ]; then
	log "$out is already $version: nothing to do"
	exit 0
fi

go mod download "$mod"
dir=$(go list -m -f '{{.Dir}}' "$mod")
if [ -z "$dir" ] || [ ! -d "$dir/hubble" ]; then
	log "no hubble source in $mod@$version (module dir: ${dir:-none})"
	exit 1
fi

log "building hubble $version from $dir/hubble into $out (a few minutes when nothing is cached)"
mkdir -p "$(dirname "$out")"
tmp=$(mktemp "$out.XXXXXX")
trap 'rm -f "$tmp"' EXIT
# -mod=mod: the module zip has no vendor directory, so resolve cilium's own
# requirements through the module proxy. The version is stamped the way
# cilium's hubble/Makefile does it.
(
	cd "$dir"
	GOWORK=off GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod" go build -trimpath \
		-ldflags "-X github.com/cilium/cilium/hubble/pkg.Version=$version" \
		-o "$tmp" ./hubble
)
mv -f "$tmp" "$out"
trap - EXIT
log "built $("$out" version)"
