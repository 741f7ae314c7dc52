package openapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

func TestTheDocumentServesTheOperationsOfAServersRoutes(t *testing.T) {
	ops, err := Operations()
	if err != nil || len(ops) == 0 {
		t.Fatalf("Operations: %v, %v", ops, err)
	}
	for _, op := range ops {
		if len(op.ServedBy) == 0 {
			t.Errorf("%s %s: no x-periscope-served-by", op.Method, op.Path)
		}
	}
	mux := http.NewServeMux()
	for p, h := range Handlers(func() []string { return []string{"GET /healthz", PatternJSON} }) {
		mux.Handle(p, h)
	}
	for _, tt := range []struct{ path, contentType string }{
		{"/api/v1/openapi.json", "application/json"},
		{"/api/v1/openapi.yaml", "application/yaml"},
	} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != tt.contentType {
			t.Errorf("GET %s: %d %s", tt.path, rec.Code, rec.Header().Get("Content-Type"))
		}
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/openapi.json", nil))
	var doc struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || doc.OpenAPI != "3.0.3" {
		t.Fatalf("the JSON document: openapi %q, %v", doc.OpenAPI, err)
	}
	var paths []string
	for p := range doc.Paths {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	if want := []string{"/api/v1/openapi.json", "/healthz"}; !slices.Equal(paths, want) {
		t.Errorf("a server of %v is served the paths %v", want, paths)
	}
}
