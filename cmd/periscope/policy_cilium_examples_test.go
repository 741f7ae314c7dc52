package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/enforcer/policy/ciliumexample"
)

// `periscope policy validate`, and `policy apply` through the collector's
// policy store, refuse the Cilium example policies Periscope does not
// enforce, naming the file and the field, and skip the files that hold no
// policy with a note per object (enforcer/policy's conformance tests hold
// the accepted ones to their meaning).
func TestValidateAndApplyOfCiliumExamplesPeriscopeDoesNotEnforce(t *testing.T) {
	server := policyServer(t)
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		root := newRootCmd()
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(args)
		err := root.ExecuteContext(context.Background())
		return out.String(), err
	}
	for rel, field := range map[string]string{
		"auth/auth.yaml":               `unknown field "auth"`,
		"l3/entities/customnodes.yaml": `"fromNodes" is not enforced`,
		"l3/requires/requires.yaml":    `"fromRequires" is not enforced`,
		"l3/service/service.yaml":      `"toServices" is not enforced`,
		"l4/l4_sni.yaml":               `"serverNames" is not enforced`,
	} {
		path := ciliumexample.Path(t, rel)
		for _, cmd := range [][]string{{"policy", "validate", "-f", path}, {"policy", "apply", "-f", path, "--server", server}} {
			out, err := run(cmd...)
			if err == nil || !strings.Contains(err.Error()+out, path) || !strings.Contains(err.Error()+out, field) {
				t.Errorf("%s %s: error %v, output %q; want a refusal naming the file and %s", cmd[1], rel, err, out, field)
			}
		}
	}
	for _, rel := range []string{"kubernetes/namespace/demo-pods.yaml", "kubernetes/serviceaccount/demo-pods.yaml"} {
		path := ciliumexample.Path(t, rel)
		out, err := run("policy", "validate", "-f", path)
		if err != nil || !strings.Contains(out, path+":1:1: skipped ") || !strings.Contains(out, `skipped Pod "`) {
			t.Errorf("validate %s: %v, output %q; want each object skipped with a note", rel, err, out)
		}
	}
	for _, rel := range []string{"l3/cidr/cidr.yaml", "host/lock-down-gke.yaml", "kubernetes/namespace/isolate-namespaces.yaml"} {
		path := ciliumexample.Path(t, rel)
		if out, err := run("policy", "validate", "-f", path); err != nil || !strings.Contains(out, "valid") {
			t.Errorf("validate %s: %v, output %q; want it valid", rel, err, out)
		}
		if out, err := run("policy", "apply", "-f", path, "--server", server); err != nil || !strings.Contains(out, "applied") {
			t.Errorf("apply %s: %v, output %q; want it applied", rel, err, out)
		}
	}
}
