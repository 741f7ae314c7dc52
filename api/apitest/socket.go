package apitest

import (
	"context"
	"net"
	"net/http"
)

// SocketClient is an HTTP client whose every request goes to the API
// socket at path, whatever the URL's host (http://localhost/... will do).
func SocketClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}}
}
