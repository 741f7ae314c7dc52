package datapath

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/enforcer/compile"
	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// podPolicy compiles policies for a vethLab: its pod is the endpoint
// (the host veth's index, app=client, identity 1500) and the host's
// address a peer labelled app=web (identity 2001).
func podPolicy(t *testing.T, l *vethLab, policies ...*policy.Policy) *compile.Compiled {
	t.Helper()
	ifc, err := net.InterfaceByName(l.host)
	if err != nil {
		t.Fatal(err)
	}
	c, err := compile.Compile(compile.Input{
		Policies:   policies,
		Endpoints:  []compile.Endpoint{{ID: uint32(ifc.Index), Identity: 1500, Labels: []string{"k8s:app=client"}, IPs: []netip.Addr{l.podIP}}},
		Identities: []identity.Identity{{ID: 2001, Labels: identity.NewLabels("k8s:app=web")}},
		IPCache:    []compile.IPEntry{{Prefix: netip.PrefixFrom(l.hostIP, 32), Identity: 2001}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// webTo8080 is a policy named name by which the pod (app=client) takes TCP
// 8080 from app=web and nothing else.
func webTo8080(name string) *policy.Policy {
	return &policy.Policy{Name: name, Kind: policy.KindCCNP, Rules: []policy.Rule{{Subject: *app("client"),
		Ingress: policy.DirectionRules{DefaultDeny: true, Allow: []policy.PeerRule{
			{Peers: []policy.PeerSelector{{Selector: app("web")}}, Ports: tcpPorts(8080, 8080)}}}}}}
}

// serveTCP listens on the pod's IPv4 address at ports and hands every
// connection to serve, each on its own goroutine, until the test ends.
func (l *vethLab) serveTCP(t *testing.T, serve func(net.Conn), ports ...int) {
	t.Helper()
	var lns []net.Listener
	var listenErr error
	l.inNS(t, func() {
		for _, port := range ports {
			ln, err := net.Listen("tcp4", fmt.Sprintf("%s:%d", l.podIP, port))
			if err != nil {
				listenErr = fmt.Errorf("listen in the pod on %d: %w", port, err)
				return
			}
			lns = append(lns, ln)
		}
	})
	for _, ln := range lns {
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go serve(c)
			}
		}()
	}
	if listenErr != nil {
		t.Fatal(listenErr)
	}
}

// closeConn is a serve function of serveTCP that closes at once.
func closeConn(c net.Conn) { c.Close() }

// dialTCP connects from the host to the pod's port; a connection not
// established within 700ms (a dropped SYN) is an error.
func (l *vethLab) dialTCP(port int) (net.Conn, error) {
	return net.DialTimeout("tcp4", fmt.Sprintf("%s:%d", l.podIP, port), 700*time.Millisecond)
}

// connectTCP is dialTCP, closing the connection made.
func (l *vethLab) connectTCP(port int) error {
	c, err := l.dialTCP(port)
	if err == nil {
		c.Close()
	}
	return err
}
