package dnsmatch

import "github.com/periscope-dev/periscope/api"

// testRef is the CiliumNetworkPolicy "namespace/name".
func testRef(ref string) api.PolicyRef { return api.ParsePolicyRef(ref, "CiliumNetworkPolicy") }

// testRefs are testRef of each.
func testRefs(refs ...string) []api.PolicyRef {
	out := make([]api.PolicyRef, len(refs))
	for i, r := range refs {
		out[i] = testRef(r)
	}
	return out
}
