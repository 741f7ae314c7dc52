package dnspolicy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// readPort is the port path holds; 0 when there is none to read.
func readPort(path string) uint16 {
	if path == "" {
		return 0
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	p, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 16)
	if err != nil {
		return 0
	}
	return uint16(p)
}

// writePort keeps port in path (nothing for an empty path).
func writePort(path string, port uint16) error {
	if path == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("keep the proxy port: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(int(port))+"\n"), 0o640); err != nil {
		return fmt.Errorf("keep the proxy port: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return errors.Join(fmt.Errorf("keep the proxy port: %w", err), os.Remove(tmp))
	}
	return nil
}
