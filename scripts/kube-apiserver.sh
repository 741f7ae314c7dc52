#!/usr/bin/env bash
# kube-apiserver.sh builds the real kube-apiserver into bin/kube-apiserver,
# so the tests of discovery/kubernetes and deploy/kubernetes can run a real
# API server (with etcd from Debian's etcd-server). The Kubernetes release is
# the one of go.mod's k8s.io/client-go (client-go v0.N.P is Kubernetes
# v1.N.P).
#
# k8s.io/kubernetes cannot be built from its module zip: its go.mod points
# the k8s.io/* staging modules at ./staging paths the zip lacks. So the
# script writes a throwaway module in a temporary directory, outside this
# repository, that requires k8s.io/kubernetes and replaces each staging
# module with the published k8s.io/* module of the same release; nothing of
# Kubernetes' code is kept here, and Go's module and build caches make a
# second build quick. It is idempotent: when bin/kube-apiserver already
# reports that release it changes nothing. KUBE_APISERVER_OUT builds
# somewhere else than bin/kube-apiserver.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
out=${KUBE_APISERVER_OUT:-$root/bin/kube-apiserver}

log() { echo "kube-apiserver: $*"; }

if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi

staging_version=$(go list -m -f '{{.Version}}' k8s.io/client-go)
version=v1.${staging_version#v0.}

# `kube-apiserver --version` prints e.g. "Kubernetes v1.36.4".
if [ -x "$out" ] && have=$("$out" --version 2>/dev/null) && [ "$(awk '{print $2}' <<<"$have")" = "$version" ]; then
	log "$out is already $version: nothing to do"
	exit 0
fi

build=$(mktemp -d "${TMPDIR:-/tmp}/kube-apiserver-build.XXXXXX")
trap 'rm -rf "$build"' EXIT

# The staging modules are the replace directives of kubernetes' own go.mod.
kmod=$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
if [ -z "$kmod" ] || [ ! -f "$kmod" ]; then
	log "cannot download k8s.io/kubernetes@$version"
	exit 1
fi
staging=$(awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$kmod")

{
	echo "module periscope.local/kube-apiserver-build"
	echo
	awk '/^go /{print; exit}' "$kmod"
	echo
	echo "require k8s.io/kubernetes $version"
	echo
	for m in $staging; do
		echo "replace $m => $m $staging_version"
	done
} >"$build/go.mod"
cat >"$build/tools.go" <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO

log "building kube-apiserver $version into $out (several minutes when nothing is cached)"
mkdir -p "$(dirname "$out")"
tmp=$(mktemp "$out.XXXXXX")
(
	cd "$build"
	GOWORK=off GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
	# The version is stamped the way kubernetes' hack/lib/version.sh does it.
	pkg=k8s.io/component-base/version
	GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath \
		-ldflags "-X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(cut -d. -f2 <<<"$version")" \
		-o "$tmp" k8s.io/kubernetes/cmd/kube-apiserver
) || { rm -f "$tmp"; exit 1; }
mv -f "$tmp" "$out"
log "built $("$out" --version)"
