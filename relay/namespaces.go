package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/api/httpserve"
)

// namespacesTimeout bounds asking one peer for its namespaces.
const namespacesTimeout = 10 * time.Second

// Namespaces lists the namespaces every peer lists (GET /api/v1/namespaces),
// once each, by cluster and name, as hubble-relay merges its peers'
// GetNamespaces. Peers that cannot be asked are left out and named in
// unavailable.
func (r *Relay) Namespaces(ctx context.Context) (list []api.Namespace, unavailable []string) {
	peers, _ := r.snapshot()
	lists := make([][]api.Namespace, len(peers))
	failed := make([]bool, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() {
			l, err := r.peerNamespaces(ctx, p)
			if err != nil {
				failed[i] = true
				r.log.Debug("peer namespaces failed", "peer", p.addr, "err", err)
				return
			}
			lists[i] = l
		})
	}
	wg.Wait()
	for i, p := range peers {
		if failed[i] {
			unavailable = append(unavailable, p.name())
		}
	}
	return api.MergeNamespaces(lists...), unavailable
}

func (r *Relay) peerNamespaces(ctx context.Context, p *peer) ([]api.Namespace, error) {
	ctx, cancel := context.WithTimeout(ctx, namespacesTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/api/v1/namespaces", nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("namespaces: %s", resp.Status)
	}
	var body api.Namespaces
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&body); err != nil {
		return nil, fmt.Errorf("read namespaces: %w", err)
	}
	return body.Namespaces, nil
}

func (r *Relay) serveNamespaces(w http.ResponseWriter, req *http.Request) {
	list, unavailable := r.Namespaces(req.Context())
	if len(unavailable) > 0 {
		w.Header().Set(flowquery.PartialHeader, strings.Join(unavailable, ","))
	}
	httpserve.WriteJSON(w, http.StatusOK, api.Namespaces{Namespaces: list})
}
