package account

import (
	"strings"
	"testing"
)

func TestCheckHoldsInAsOutPlusDroppedPlusQueued(t *testing.T) {
	tests := []struct {
		name    string
		stage   Stage
		wantErr string // "" when the account balances
	}{
		{"nothing yet", Stage{Name: StageDecoder}, ""},
		{"balanced, drops by reason", Stage{Name: StageRingBuffer, In: 10, Out: 6, Queued: 1,
			Dropped: map[string]uint64{ReasonRingFull: 2, ReasonDecodeError: 1}}, ""},
		{"balanced, zero drops listed", Stage{Name: SinkStage("clickhouse"), In: 5, Out: 5,
			Dropped: map[string]uint64{ReasonQueueFull: 0, ReasonFailed: 0}}, ""},
		{"one missing", Stage{Name: StageRingBuffer, In: 10, Out: 6, Queued: 1,
			Dropped: map[string]uint64{ReasonRingFull: 2}},
			"stage ringbuf: in 10 != out 6 + dropped 2 (ring_full 2) + queued 1"},
		{"one too many", Stage{Name: SinkStage("otlp"), In: 3, Out: 2, Queued: 1,
			Dropped: map[string]uint64{ReasonFailed: 1, ReasonCorrupt: 0}},
			"stage sink/otlp: in 3 != out 2 + dropped 1 (corrupt 0, failed 1) + queued 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.stage.Check()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Check() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Check() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestSinkStageNamesTheSink(t *testing.T) {
	if got := SinkStage("clickhouse"); got != "sink/clickhouse" {
		t.Errorf("SinkStage(clickhouse) = %q, want sink/clickhouse", got)
	}
}
