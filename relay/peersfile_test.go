package relay

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestParsePeers(t *testing.T) {
	got := ParsePeers([]byte("# the nodes\nnode1:4244\n\n  node2:4244  # second\nhttps://node3:4244\n"))
	want := []string{"node1:4244", "node2:4244", "https://node3:4244"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestPeersFileIsReloadedWhenItChanges(t *testing.T) {
	nodes := threeNodes(t, nil)
	path := filepath.Join(t.TempDir(), "peers.txt")
	if err := os.WriteFile(path, []byte(nodes[0].addr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, base := startRelay(t, Options{Peers: []string{nodes[1].addr}, PeersFile: path, PeersFilePoll: 20 * time.Millisecond})
	if n := len(r.Status().Nodes); n != 2 {
		t.Fatalf("%d peers, want 2", n)
	}
	fl := follow(t, base, "")
	// A newer modification time and another size: node3 replaces node1.
	if err := os.WriteFile(path, []byte("# changed\n"+nodes[2].addr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node3 joined", func() bool { return nodeStatus(r, nodes[2].addr).Address != "" })
	if nodeStatus(r, nodes[0].addr).Address != "" {
		t.Error("node1 still a peer")
	}
	waitFor(t, "node3 joined the live answer", func() bool { return nodes[2].c.Store().Followers() == 1 })
	nodes[2].emit(testFlow(7, time.Now()))
	if gs := fl.waitCount(t, 1); gs[0].node != "node3" {
		t.Errorf("got %v", gs)
	}
}
