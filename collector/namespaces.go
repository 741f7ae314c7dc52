package collector

import (
	"context"
	"net/http"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/api/httpserve"
)

// NamespaceTTL is how long a namespace stays listed after the last flow
// that named it, as in Hubble (its namespace manager's TTL).
const NamespaceTTL = time.Hour

// Namespaces lists the namespaces of the sources and destinations of the
// flows the ring holds from the last NamespaceTTL, each with the node's
// cluster (Registry.ClusterName), by name: what Hubble's GetNamespaces answers. It reads the ring
// when asked, so the pipeline pays nothing for it.
func (c *Collector) Namespaces(ctx context.Context) ([]api.Namespace, error) {
	seen := map[string]struct{}{}
	q := flowquery.Query{Since: time.Now().Add(-NamespaceTTL)}
	_, err := c.store.Query(ctx, q, flowquery.Answer{Flow: func(f *api.Flow) error {
		for _, ns := range [2]string{f.Source.Namespace, f.Destination.Namespace} {
			if ns != "" {
				seen[ns] = struct{}{}
			}
		}
		return nil
	}})
	if err != nil {
		return nil, err
	}
	list := make([]api.Namespace, 0, len(seen))
	for ns := range seen {
		list = append(list, api.Namespace{Cluster: c.Registry().ClusterName(), Namespace: ns})
	}
	return api.MergeNamespaces(list), nil
}

func (c *Collector) serveNamespaces(w http.ResponseWriter, r *http.Request) {
	list, err := c.Namespaces(r.Context())
	if err != nil {
		http.Error(w, "list namespaces: "+err.Error(), http.StatusInternalServerError)
		return
	}
	httpserve.WriteJSON(w, http.StatusOK, api.Namespaces{Namespaces: list})
}
