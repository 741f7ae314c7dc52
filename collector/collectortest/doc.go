// Package collectortest runs an in-process collector served as the binary
// serves it, for the tests of its API's access model and of the clients
// that call it (the CLI).
//
// It must not be imported by anything the binary links (it imports
// testing), nor by the collector's own in-package tests (it imports the
// collector).
package collectortest
