package collector

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// The endpoint state file lists the endpoints a collector enforces, as it
// resolved them (host interface, addresses), so that the next run keeps
// those its endpoints file no longer declares until they are explicitly
// removed (Collector.RemoveEndpoint): a restart never silently stops
// enforcing an endpoint whose programs stay attached.

// endpointStateVersion is the state file's format.
const endpointStateVersion = 1

type endpointStateFile struct {
	Version   int             `json:"version"`
	Endpoints []stateEndpoint `json:"endpoints"`
}

// stateEndpoint is an endpoint as the state file keeps it: its declaration
// with the host interface and addresses it resolved to.
type stateEndpoint struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Labels    map[string]string `json:"labels,omitempty"`
	NetNS     string            `json:"netns,omitempty"`
	Interface string            `json:"interface"`
	IfIndex   uint32            `json:"ifindex"`
	IPs       []string          `json:"ips,omitempty"`
	Audit     bool              `json:"audit,omitempty"`
	// Discovered is set for an endpoint a watcher reported.
	Discovered *Discovered `json:"discovered,omitempty"`
}

// keptEndpoint is an endpoint of the state file: its declaration, and the
// index its interface had. A device of that name with another index is
// another device (indexes are not reused soon), not the endpoint's.
type keptEndpoint struct {
	Config     EndpointConfig
	IfIndex    uint32
	Discovered *Discovered
}

// loadEndpointState reads the endpoints of the state file at path as
// declarations that resolve to what they resolved to; a missing file is
// no endpoint.
func loadEndpointState(path string) ([]keptEndpoint, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("endpoint state: %w", err)
	}
	var f endpointStateFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("endpoint state %s: %w", path, err)
	}
	if f.Version != endpointStateVersion {
		return nil, fmt.Errorf("endpoint state %s: version %d, want %d", path, f.Version, endpointStateVersion)
	}
	out := make([]keptEndpoint, 0, len(f.Endpoints))
	for _, e := range f.Endpoints {
		out = append(out, keptEndpoint{IfIndex: e.IfIndex, Discovered: e.Discovered, Config: EndpointConfig{Name: e.Name,
			Namespace: e.Namespace, Labels: e.Labels, NetNS: e.NetNS, Interface: e.Interface, IPs: e.IPs, Audit: e.Audit}})
	}
	return out, nil
}

// saveEndpointState writes the endpoints to the state file at path
// (atomically: a crash leaves the old file or the new one).
func saveEndpointState(path string, eps []ResolvedEndpoint) error {
	f := endpointStateFile{Version: endpointStateVersion, Endpoints: make([]stateEndpoint, 0, len(eps))}
	for _, re := range eps {
		e := stateEndpoint{Name: re.Config.Name, Namespace: re.Config.namespace(), Labels: re.Config.Labels,
			NetNS: re.Config.NetNS, Interface: re.HostIfName, IfIndex: re.HostIfIndex, Audit: re.Config.Audit,
			Discovered: re.Discovered}
		for _, ip := range re.IPs {
			e.IPs = append(e.IPs, ip.String())
		}
		f.Endpoints = append(f.Endpoints, e)
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("endpoint state: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("endpoint state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("endpoint state: %w", err)
	}
	_, werr := tmp.Write(append(data, '\n'))
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("endpoint state %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("endpoint state %s: %w", path, err)
	}
	return nil
}
