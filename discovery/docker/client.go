package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// client speaks the Docker Engine API over a Unix socket.
type client struct {
	socket string
	http   *http.Client
}

func newClient(socket string) *client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:    4,
		IdleConnTimeout: 30 * time.Second,
	}
	return &client{socket: socket, http: &http.Client{Transport: tr}}
}

// errNotFound is an answer 404: no such container or network.
var errNotFound = errors.New("not found")

// get decodes the JSON answer of GET path into out.
func (c *client) get(ctx context.Context, path string, query url.Values, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := c.do(ctx, path, query)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("GET %s on %s: decode: %w", path, c.socket, err)
	}
	return nil
}

// do sends GET path and checks the status; the caller closes the body.
func (c *client) do(ctx context.Context, path string, query url.Values) (*http.Response, error) {
	u := url.URL{Scheme: "http", Host: "docker", Path: path, RawQuery: query.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s on %s: %w", path, c.socket, err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("GET %s on %s: %w: %s", path, c.socket, errNotFound, body)
	}
	return nil, fmt.Errorf("GET %s on %s: %s: %s", path, c.socket, resp.Status, body)
}

// containerSummary is an entry of GET /containers/json.
type containerSummary struct {
	ID string `json:"Id"`
}

// containerJSON is the part of GET /containers/{id}/json the watcher reads.
type containerJSON struct {
	ID    string `json:"Id"`
	Name  string `json:"Name"`
	State struct {
		Running bool `json:"Running"`
		Paused  bool `json:"Paused"`
	} `json:"State"`
	Config struct {
		Labels map[string]string `json:"Labels"`
	} `json:"Config"`
	HostConfig struct {
		NetworkMode string `json:"NetworkMode"`
	} `json:"HostConfig"`
	NetworkSettings struct {
		Networks map[string]struct {
			NetworkID         string `json:"NetworkID"`
			IPAddress         string `json:"IPAddress"`
			GlobalIPv6Address string `json:"GlobalIPv6Address"`
		} `json:"Networks"`
	} `json:"NetworkSettings"`
}

// networkJSON is the part of GET /networks/{id} the watcher reads.
type networkJSON struct {
	Driver string `json:"Driver"`
}

// event is one message of GET /events.
type event struct {
	Type   string `json:"Type"`
	Action string `json:"Action"`
	Actor  struct {
		ID         string            `json:"ID"`
		Attributes map[string]string `json:"Attributes"`
	} `json:"Actor"`
}

func (c *client) containers(ctx context.Context) ([]containerSummary, error) {
	var out []containerSummary
	return out, c.get(ctx, "/containers/json", nil, &out)
}

func (c *client) inspect(ctx context.Context, id string) (*containerJSON, error) {
	var out containerJSON
	return &out, c.get(ctx, "/containers/"+url.PathEscape(id)+"/json", nil, &out)
}

func (c *client) network(ctx context.Context, id string) (*networkJSON, error) {
	var out networkJSON
	return &out, c.get(ctx, "/networks/"+url.PathEscape(id), nil, &out)
}

// events opens the stream of container and network events; the caller
// closes it.
func (c *client) events(ctx context.Context) (io.ReadCloser, error) {
	filters, _ := json.Marshal(map[string][]string{"type": {"container", "network"}})
	resp, err := c.do(ctx, "/events", url.Values{"filters": {string(filters)}})
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
