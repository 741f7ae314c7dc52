package proxy

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// listeningPorts returns the ports with a TCP socket listening (on any
// address) in this network namespace, by family, read from
// /proc/net/tcp{,6}.
func listeningPorts() (v4, v6 map[uint16]bool, err error) {
	v4, v6 = map[uint16]bool{}, map[uint16]bool{}
	for _, f := range []struct {
		path string
		into map[uint16]bool
	}{
		{"/proc/net/tcp", v4},
		{"/proc/net/tcp6", v6},
	} {
		file, err := os.Open(f.path)
		if err != nil {
			return nil, nil, fmt.Errorf("read listeners: %w", err)
		}
		sc := bufio.NewScanner(file)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[3] != "0A" { // TCP_LISTEN
				continue
			}
			_, port, ok := strings.Cut(fields[1], ":")
			if !ok {
				continue
			}
			var p uint16
			if _, err := fmt.Sscanf(port, "%X", &p); err == nil {
				f.into[p] = true
			}
		}
		file.Close()
		if err := sc.Err(); err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", f.path, err)
		}
	}
	return v4, v6, nil
}
