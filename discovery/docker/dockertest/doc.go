// Package dockertest runs a container engine for tests: dockerd (Debian's
// docker.io) with its own data root, exec root, pidfile and API socket in
// a temporary directory, on a netlab lab's bridge, without touching the
// host's iptables, and an image imported (`docker import`) from a root
// file system of busybox-static that the harness builds. No registry is
// involved.
//
// It imports package testing: only tests may import it.
package dockertest
