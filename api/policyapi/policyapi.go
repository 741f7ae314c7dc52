package policyapi

import "net/url"

// Paths of the API. A policy's own path is PolicyPath.
const (
	// PoliciesPath lists (GET) and applies (POST, a YAML body of one or
	// more documents; the query parameter FileParam names it in errors)
	// policies.
	PoliciesPath = "/api/v1/policies"
	// IdentitiesPath lists the node's security identities (GET).
	IdentitiesPath = "/api/v1/identities"
	// FileParam is the query parameter of a POST naming the body in errors
	// ("file:line:column: ..."); "request" when absent.
	FileParam = "file"
	// KindParam is the query parameter of a DELETE restricting it to one
	// kind; every kind of the name when absent.
	KindParam = "kind"
	// ClusterNamespace stands for the empty namespace of clusterwide
	// policies in a policy's path.
	ClusterNamespace = "-"
)

// PolicyPath is the path of the policies named namespace/name (GET: their
// YAML as applied, one document per kind; DELETE: remove them). An empty
// namespace is a clusterwide policy's.
func PolicyPath(namespace, name string) string {
	if namespace == "" {
		namespace = ClusterNamespace
	}
	return PoliciesPath + "/" + url.PathEscape(namespace) + "/" + url.PathEscape(name)
}

// Policy is one applied policy in GET /api/v1/policies and in an
// ApplyResult.
type Policy struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"` // empty for clusterwide policies
	Name      string `json:"name"`
	// Revision is the node's policy revision that last applied the policy.
	Revision uint64 `json:"revision"`
}

// ApplyResult is the answer of POST /api/v1/policies: the policies applied,
// or (status 400 or 413) why nothing was.
type ApplyResult struct {
	Applied []Policy `json:"applied,omitempty"`
	// Errors are "file:line:column: what is wrong", one per problem.
	Errors []string `json:"errors,omitempty"`
	// Skipped are notes on the documents that hold other Kubernetes
	// objects (a Deployment, a Service), skipped: "file:line:column:
	// skipped Deployment "web" (apps/v1): not a network policy".
	Skipped []string `json:"skipped,omitempty"`
}

// DeleteResult is the answer of DELETE /api/v1/policies/{namespace}/{name}.
type DeleteResult struct {
	Deleted int `json:"deleted"`
}

// Identity is one security identity in GET /api/v1/identities.
type Identity struct {
	ID     uint32   `json:"id"`
	Labels []string `json:"labels"`
}
