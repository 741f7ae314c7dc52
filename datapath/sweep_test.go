package datapath

import (
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// TestSweeperKeepsARedirectsOpenConnections: an open TCP connection of a
// transparent redirect outlives IdleTimeout (forgetting it would stop
// steering it) up to ProxyIdleTimeout; closed ones and the rest go as
// before.
func TestSweeperKeepsARedirectsOpenConnections(t *testing.T) {
	s := &sweeper{idleNs: uint64(30 * time.Second), closeNs: uint64(time.Second), proxyNs: uint64(10 * time.Minute)}
	const now = uint64(1 << 50)
	tcp := &tcFlowFlowKey{Proto: api.ProtoTCP}
	udp := &tcFlowFlowKey{Proto: api.ProtoUDP}
	fins := uint32(tcFlowFlowStateFLOW_STATE_FIN_FWD | tcFlowFlowStateFLOW_STATE_FIN_REV)
	for _, tc := range []struct {
		name    string
		k       *tcFlowFlowKey
		proxy   tcFlowFlowProxy
		state   uint32
		idle    time.Duration
		expired bool
	}{
		{"a plain connection idle past IdleTimeout ends", tcp, tcFlowFlowProxyFLOW_PROXY_NONE, 0, 31 * time.Second, true},
		{"a redirected open connection idle past IdleTimeout stays", tcp, tcFlowFlowProxyFLOW_PROXY_REDIRECT, 0, 31 * time.Second, false},
		{"the proxy's upstream connection too", tcp, tcFlowFlowProxyFLOW_PROXY_UPSTREAM, 0, 9 * time.Minute, false},
		{"a redirected connection idle past ProxyIdleTimeout ends", tcp, tcFlowFlowProxyFLOW_PROXY_REDIRECT, 0, 11 * time.Minute, true},
		{"a closed redirected connection ends after CloseGrace", tcp, tcFlowFlowProxyFLOW_PROXY_REDIRECT, fins, 2 * time.Second, true},
		{"a redirected UDP flow ends after IdleTimeout", udp, tcFlowFlowProxyFLOW_PROXY_REDIRECT, 0, 31 * time.Second, true},
	} {
		v := &tcFlowFlowValue{LastSeen: now - uint64(tc.idle), Proxy: uint8(tc.proxy), State: tc.state}
		if got := s.expired(tc.k, v, now); got != tc.expired {
			t.Errorf("%s: expired %v", tc.name, got)
		}
	}
}
