package main

import (
	"fmt"
	"net"

	"github.com/spf13/pflag"

	"github.com/periscope-dev/periscope/api/access"
)

// accessFlags are the flags of the API's access model (api/access), the
// same for the collector and the relay: the token, the local socket, and
// the names and origins the API answers besides its own.
type accessFlags struct {
	token          string
	tokenFile      string
	socket         string
	allowedHosts   []string
	allowedOrigins []string
}

func (a *accessFlags) addFlags(f *pflag.FlagSet, defaultSocket string) {
	f.StringVar(&a.token, "api-token", "", "token every API call needs (Authorization: Bearer), and without which no change "+
		"is made over TCP; $"+envAPIToken+" when not given (the web UI takes it as ?token=)")
	f.StringVar(&a.token, "ui-token", "", "same as --api-token")
	_ = f.MarkDeprecated("ui-token", "use --api-token: it now guards the whole API")
	f.StringVar(&a.tokenFile, "api-token-file", "", "file holding the API token")
	f.StringVar(&a.socket, "api-socket", defaultSocket, `local Unix socket serving the same API to whoever its file permissions let in (mode 0660), changes included; "" for none`)
	f.StringSliceVar(&a.allowedHosts, "api-allowed-hosts", nil,
		"names the API may be called by besides IP addresses, localhost and the --listen host (e.g. the node's DNS name); other Host headers are refused")
	f.StringSliceVar(&a.allowedOrigins, "api-allowed-origins", nil,
		`web origins (scheme://host[:port]) whose pages may call the API besides the server's own; "*" for any`)
}

// guard builds the access guard of the API listening on listen, and the
// token (for the APIs beside it: Hubble's).
func (a accessFlags) guard(listen string) (*access.Guard, string, error) {
	token, err := apiToken(a.token, a.tokenFile)
	if err != nil {
		return nil, "", fmt.Errorf("--api-token-file: %w", err)
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		host = listen
	}
	return access.New(access.Policy{
		Token: token, ListenHost: host, AllowedHosts: a.allowedHosts, AllowedOrigins: a.allowedOrigins,
		Public: access.StaticFiles,
	}), token, nil
}
