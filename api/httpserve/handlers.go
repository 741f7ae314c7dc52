package httpserve

import (
	"encoding/json"
	"io"
	"net/http"
)

// Mux serves routes, a table of handlers by ServeMux pattern.
func Mux(routes map[string]http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	for pattern, h := range routes {
		mux.Handle(pattern, h)
	}
	return mux
}

// Healthz answers "ok" in plain text: the route GET /healthz.
func Healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok")
}

// WriteJSON answers v as one line of JSON with status code; headers set on
// w before are kept. A v that does not encode is a 500 naming the error.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode answer: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(body, '\n'))
}
