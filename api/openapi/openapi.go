// Package openapi owns the contract of Periscope's HTTP API: an OpenAPI 3
// document (openapi.yaml, embedded) of every route the collector and the
// relay serve, the handlers that serve it (GET /api/v1/openapi.json and
// .yaml; each server the operations of the routes it serves), and the list
// of its operations, against which tests check the servers' routes and
// answers.
//
// It must not import anything of Periscope's: servers import it.
package openapi

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed openapi.yaml
var document []byte

// Patterns of the document's own routes.
const (
	PatternJSON = "GET /api/v1/openapi.json"
	PatternYAML = "GET /api/v1/openapi.yaml"
)

// YAML returns the document as written: every operation of every server.
func YAML() []byte { return slices.Clone(document) }

// Handlers serve the document, by ServeMux pattern (PatternJSON,
// PatternYAML), for a server to add to its routes. A server serves the
// operations of its own routes only: routes returns them (ServeMux
// patterns, as a server's Routes does) when a request comes.
func Handlers(routes func() []string) map[string]http.Handler {
	serve := func(contentType string, encode func(any) ([]byte, error)) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			doc, err := For(routes())
			var b []byte
			if err == nil {
				b, err = encode(doc)
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", contentType)
			w.Write(b)
		})
	}
	return map[string]http.Handler{
		PatternJSON: serve("application/json", json.Marshal),
		PatternYAML: serve("application/yaml", yaml.Marshal),
	}
}

// For returns the document with only the operations routes serve (those
// whose Operation.Route is one of routes), for JSON or YAML encoding.
func For(routes []string) (map[string]any, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(document, &doc); err != nil {
		return nil, fmt.Errorf("openapi: parse the document: %w", err)
	}
	ops, err := Operations()
	if err != nil {
		return nil, err
	}
	paths, _ := doc["paths"].(map[string]any)
	for _, op := range ops {
		if slices.Contains(routes, op.Route) {
			continue
		}
		item, _ := paths[op.Path].(map[string]any)
		delete(item, strings.ToLower(op.Method))
		if !hasOperation(item) {
			delete(paths, op.Path)
		}
	}
	return doc, nil
}

// hasOperation reports whether a path item has an operation left.
func hasOperation(item map[string]any) bool {
	for k := range item {
		switch k {
		case "get", "put", "post", "delete", "patch", "head", "options":
			return true
		}
	}
	return false
}

// Server names of x-periscope-served-by.
const (
	Collector = "collector"
	Relay     = "relay"
)

// Operation is one documented operation.
type Operation struct {
	Method, Path string
	// ServedBy are the servers that serve it (Collector, Relay).
	ServedBy []string
	// Route is the ServeMux pattern that serves it: "METHOD path" unless
	// the document says another (x-periscope-route: the web UI's
	// catch-all serves its WebSocket).
	Route string
}

// Operations lists the document's operations, sorted by path and method.
func Operations() ([]Operation, error) {
	var doc struct {
		Paths map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(document, &doc); err != nil {
		return nil, fmt.Errorf("openapi: parse the document: %w", err)
	}
	var ops []Operation
	for path, item := range doc.Paths {
		for method, node := range item {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options":
			default:
				continue // parameters, summary, ...
			}
			var ext struct {
				ServedBy []string `yaml:"x-periscope-served-by"`
				Route    string   `yaml:"x-periscope-route"`
			}
			if err := node.Decode(&ext); err != nil {
				return nil, fmt.Errorf("openapi: %s %s: %w", method, path, err)
			}
			op := Operation{Method: strings.ToUpper(method), Path: path, ServedBy: ext.ServedBy, Route: ext.Route}
			if op.Route == "" {
				op.Route = op.Method + " " + path
			}
			ops = append(ops, op)
		}
	}
	slices.SortFunc(ops, func(a, b Operation) int {
		return strings.Compare(a.Path+" "+a.Method, b.Path+" "+b.Method)
	})
	return ops, nil
}

// Routes returns the routes (ServeMux patterns) the document says server
// serves, sorted and each once.
func Routes(server string) ([]string, error) {
	ops, err := Operations()
	if err != nil {
		return nil, err
	}
	var routes []string
	for _, op := range ops {
		if slices.Contains(op.ServedBy, server) && !slices.Contains(routes, op.Route) {
			routes = append(routes, op.Route)
		}
	}
	slices.Sort(routes)
	return routes, nil
}
