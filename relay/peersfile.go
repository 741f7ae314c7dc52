package relay

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// ParsePeers reads a peers file: one address per line (host:port or an
// http(s):// URL); '#' starts a comment; blank lines are ignored.
func ParsePeers(data []byte) []string {
	var peers []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		for field := range strings.FieldsSeq(line) {
			peers = append(peers, field)
		}
	}
	return peers
}

// watchPeersFile calls set with the file's peers (joined with static) now
// and whenever its modification time or size changes, polling every
// interval, until ctx is done. A file that cannot be read keeps the last
// peers and is logged.
func (r *Relay) watchPeersFile(ctx context.Context, path string, static []string, interval time.Duration) {
	var lastMod time.Time
	lastSize := int64(-1)
	load := func() {
		st, err := os.Stat(path)
		if err != nil {
			r.log.Warn("peers file", "path", path, "err", err)
			return
		}
		if st.ModTime().Equal(lastMod) && st.Size() == lastSize {
			return
		}
		data, err := os.ReadFile(path)
		if err != nil {
			r.log.Warn("peers file", "path", path, "err", err)
			return
		}
		lastMod, lastSize = st.ModTime(), st.Size()
		peers := append(append([]string(nil), static...), ParsePeers(data)...)
		r.log.Info("peers file loaded", "path", path, "peers", len(peers))
		r.SetPeers(peers)
	}
	load()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			load()
		}
	}
}

// readPeersFile is the first read of the peers file, which must succeed.
func readPeersFile(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read peers file: %w", err)
	}
	return ParsePeers(data), nil
}
