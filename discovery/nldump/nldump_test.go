package nldump

import (
	"errors"
	"fmt"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestRetry(t *testing.T) {
	other := errors.New("permission denied")
	interrupted := fmt.Errorf("list links: %w", netlink.ErrDumpInterrupted)
	tests := []struct {
		name      string
		results   []error // one per call; the last repeats
		wantCalls int
		wantErr   error
	}{
		{"whole at once", []error{nil}, 1, nil},
		{"interrupted twice, then whole", []error{interrupted, interrupted, nil}, 3, nil},
		{"another error is not retried", []error{other}, 1, other},
		{"always interrupted gives up", []error{interrupted}, Attempts, netlink.ErrDumpInterrupted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			got, err := Retry(func() (int, error) {
				err := tt.results[min(calls, len(tt.results)-1)]
				calls++
				return calls, err
			})
			if calls != tt.wantCalls || got != calls {
				t.Errorf("%d calls returning %d, want %d calls and the last result", calls, got, tt.wantCalls)
			}
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
		})
	}
}
