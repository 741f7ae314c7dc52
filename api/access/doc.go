// Package access owns who may call Periscope's APIs: one model for the
// HTTP API of collectors and relays (flows, status, policies, identities,
// metrics, the web UI and its WebSocket) and, through CheckAuthorization,
// Hubble's gRPC API.
//
// A call comes over TCP (the listen address) or over the local Unix socket
// (--api-socket, mode 0660), which is trusted as its file permissions are,
// as Cilium's agent API is. Over TCP:
//
//   - the Host must be an IP address, localhost, the listen address's host,
//     or a name allowed (Policy.AllowedHosts): a name a browser resolved to
//     us by DNS rebinding is refused (403);
//   - a browser's cross-origin call is refused (403): an Origin that is
//     not the server's own or allowed (Policy.AllowedOrigins), or a
//     Sec-Fetch-Site other than same-origin or none;
//   - a call that changes state (any method but GET, HEAD and OPTIONS)
//     needs the token, and none can be made without one: over TCP changes
//     need Policy.Token; a POST, PUT or PATCH must declare a JSON or YAML
//     body (415 otherwise): the content types a browser sends cross-site
//     without a preflight (text/plain, form encodings) never change state;
//   - when a token is set, every call but Policy.Public ones (the web UI's
//     own files, /healthz) needs it, as "Authorization: Bearer <token>",
//     as the password of Basic authentication, or, for a GET (the web
//     UI's WebSocket, which browsers cannot give headers), as ?token=,
//     which is then taken off the request.
//
// Over the socket (ListenSocket) every call is allowed, so it is served
// without a Guard. The package decides; it does not know the APIs it
// guards.
package access
