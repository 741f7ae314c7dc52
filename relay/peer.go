package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// peerURL turns "host:port" or an http(s):// URL into a base URL.
func peerURL(addr string, useTLS bool) (string, error) {
	s := strings.TrimRight(strings.TrimSpace(addr), "/")
	if !strings.Contains(s, "://") {
		if useTLS {
			s = "https://" + s
		} else {
			s = "http://" + s
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("peer %q: want host:port or an http(s):// URL", addr)
	}
	return s, nil
}

// peerInfo is what the relay reads from a peer's /api/v1/status.
type peerInfo struct {
	NodeName      string  `json:"node_name"`
	Version       string  `json:"version"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	FlowsSeen     uint64  `json:"flows_seen"`
	FlowsStored   int     `json:"flows_stored"`
	RingSize      int     `json:"ring_size"`
}

// peer is one collector and what the relay knows of it.
type peer struct {
	addr   string
	base   string
	cancel context.CancelFunc // stops the probe

	received atomic.Uint64

	mu         sync.Mutex
	info       peerInfo
	probed     bool // info was read at least once
	connected  bool
	lastErr    string
	lastChange time.Time
	lastFlow   time.Time // time of the newest flow received
	lag        time.Duration
}

func newPeer(addr, base string) *peer {
	return &peer{addr: addr, base: base, lastChange: time.Now()}
}

func (p *peer) stop() {
	if p.cancel != nil {
		p.cancel()
	}
}

// name is the peer's node name once known, else its address.
func (p *peer) name() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.info.NodeName != "" {
		return p.info.NodeName
	}
	return p.addr
}

// up records a successful exchange with the peer.
func (p *peer) up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.connected {
		p.connected, p.lastChange = true, time.Now()
	}
}

// down records a failed exchange with the peer.
func (p *peer) down(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastErr = err.Error()
	if p.connected || !p.probed {
		p.connected, p.lastChange = false, time.Now()
	}
}

// isUp reports whether the last exchange with the peer succeeded.
func (p *peer) isUp() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.connected
}

// got records flows received from the peer; newest is the latest flow time.
func (p *peer) got(n int, newest time.Time) {
	p.received.Add(uint64(n))
	now := time.Now()
	p.mu.Lock()
	if newest.After(p.lastFlow) {
		p.lastFlow = newest
	}
	p.lag = now.Sub(newest)
	p.mu.Unlock()
}

// probeLoop reads the peer's status now and every ProbeInterval.
func (r *Relay) probeLoop(ctx context.Context, p *peer) {
	t := time.NewTicker(r.opts.ProbeInterval)
	defer t.Stop()
	for {
		if err := r.probe(ctx, p); err != nil && ctx.Err() == nil {
			if p.isUp() || !p.wasProbed() {
				r.log.Warn("peer unavailable", "peer", p.addr, "err", err)
			}
			p.down(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *peer) wasProbed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.probed
}

func (r *Relay) probe(ctx context.Context, p *peer) error {
	ctx, cancel := context.WithTimeout(ctx, max(r.opts.ProbeInterval, 2*time.Second))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/api/v1/status", nil)
	if err != nil {
		return err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status: %s", resp.Status)
	}
	var info peerInfo
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&info); err != nil {
		return fmt.Errorf("read status: %w", err)
	}
	p.mu.Lock()
	wasUp := p.connected
	p.info, p.probed = info, true
	p.mu.Unlock()
	p.up()
	if !wasUp {
		r.log.Info("peer connected", "peer", p.addr, "node", info.NodeName)
	}
	return nil
}

// NodeStatus is one peer in the relay's status.
type NodeStatus struct {
	Address   string `json:"address"`
	NodeName  string `json:"node_name"`
	Version   string `json:"version"`
	Connected bool   `json:"connected"`
	// Since is when Connected last changed.
	Since     time.Time `json:"since"`
	LastError string    `json:"last_error,omitempty"`
	// LagSeconds is how old the latest flow received from the node was
	// when it arrived.
	LagSeconds    float64   `json:"lag_seconds"`
	LastFlowTime  time.Time `json:"last_flow_time,omitzero"`
	FlowsReceived uint64    `json:"flows_received"`
	// The node's own counters, from its last status.
	UptimeSeconds float64 `json:"uptime_seconds"`
	FlowsSeen     uint64  `json:"flows_seen"`
	FlowsStored   int     `json:"flows_stored"`
	RingSize      int     `json:"ring_size"`
}

func (p *peer) status() NodeStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return NodeStatus{
		Address:       p.addr,
		NodeName:      p.info.NodeName,
		Version:       p.info.Version,
		Connected:     p.connected,
		Since:         p.lastChange,
		LastError:     p.lastErr,
		LagSeconds:    p.lag.Seconds(),
		LastFlowTime:  p.lastFlow,
		FlowsReceived: p.received.Load(),
		UptimeSeconds: p.info.UptimeSeconds,
		FlowsSeen:     p.info.FlowsSeen,
		FlowsStored:   p.info.FlowsStored,
		RingSize:      p.info.RingSize,
	}
}

// Status is the body of the relay's GET /api/v1/status.
type Status struct {
	Version             string       `json:"version"`
	UptimeSeconds       float64      `json:"uptime_seconds"`
	MergeWindowSeconds  float64      `json:"merge_window_seconds"`
	NumConnectedNodes   int          `json:"num_connected_nodes"`
	NumUnavailableNodes int          `json:"num_unavailable_nodes"`
	UnavailableNodes    []string     `json:"unavailable_nodes"`
	Answers             int64        `json:"answers"`
	PartialAnswers      uint64       `json:"partial_answers"`
	FlowsSent           uint64       `json:"flows_sent"`
	LateFlows           uint64       `json:"late_flows"`
	Followers           int          `json:"followers"`
	MaxFollowers        int          `json:"max_followers"`
	Nodes               []NodeStatus `json:"nodes"`
	// Routes are the HTTP routes served (Relay.Routes).
	Routes []string `json:"routes"`
}

// Status reports the relay's counters and every peer's state.
func (r *Relay) Status() Status {
	peers, _ := r.snapshot()
	st := Status{
		Version:            r.opts.Version,
		UptimeSeconds:      time.Since(r.started).Seconds(),
		MergeWindowSeconds: r.opts.MergeWindow.Seconds(),
		UnavailableNodes:   []string{},
		Answers:            r.answers.Load(),
		PartialAnswers:     r.partials.Load(),
		FlowsSent:          r.sent.Load(),
		LateFlows:          r.late.Load(),
		Followers:          r.follows.InUse(),
		MaxFollowers:       r.follows.Max(),
		Routes:             r.Routes(),
		Nodes:              make([]NodeStatus, 0, len(peers)),
	}
	for _, p := range peers {
		ns := p.status()
		if ns.Connected {
			st.NumConnectedNodes++
		} else {
			st.NumUnavailableNodes++
			st.UnavailableNodes = append(st.UnavailableNodes, p.name())
		}
		st.Nodes = append(st.Nodes, ns)
	}
	return st
}
