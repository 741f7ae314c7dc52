// Package httpserve owns the serving of a daemon's HTTP API, the part the
// collector and the relay share: a route table as a ServeMux, /healthz, JSON
// answers, and the API's servers on the TCP listener (behind the access
// guard) and on the local socket, with one set of HTTP settings, from start
// to shutdown.
//
// It must not know the routes it serves, nor decide who may call them
// (api/access does).
package httpserve
