// Package docker watches a container engine that serves the Docker Engine
// API on a Unix socket (dockerd, or Podman's `podman system service`)
// through its event stream, and turns each running container on a bridge
// network into an endpoint event: its name, its labels ("container:"
// source), its compose project as namespace, its addresses and its
// host-side veth. It speaks the API's plain HTTP with the standard library;
// it uses only the unversioned paths, so the engine answers in its own API
// version.
//
// It must not start, stop or change containers, nor attach programs: it
// only reads.
package docker
