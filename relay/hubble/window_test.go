package hubble

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestTimeWindowChecksSinceAndUntil(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	invalid := &timestamppb.Timestamp{Seconds: 1, Nanos: -1}
	for _, tc := range []struct {
		name         string
		since, until *timestamppb.Timestamp
		from, to     time.Time
		err          string
	}{
		{"neither is the whole time", nil, nil, time.Time{}, time.Time{}, ""},
		{"since alone", timestamppb.New(t0), nil, t0, time.Time{}, ""},
		{"until alone", nil, timestamppb.New(t0), time.Time{}, t0, ""},
		{"until after since", timestamppb.New(t0), timestamppb.New(t0.Add(time.Hour)), t0, t0.Add(time.Hour), ""},
		{"until before since is refused", timestamppb.New(t0.Add(time.Hour)), timestamppb.New(t0), time.Time{}, time.Time{}, "until is before since"},
		{"an invalid since is refused", invalid, nil, time.Time{}, time.Time{}, "since: "},
		{"an invalid until is refused", nil, invalid, time.Time{}, time.Time{}, "until: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from, to, err := timeWindow(tc.since, tc.until)
			if tc.err != "" {
				st, _ := status.FromError(err)
				if err == nil || st.Code() != codes.InvalidArgument || len(st.Message()) < len(tc.err) || st.Message()[:len(tc.err)] != tc.err {
					t.Fatalf("timeWindow error %v, want InvalidArgument %q...", err, tc.err)
				}
				return
			}
			if err != nil || !from.Equal(tc.from) || !to.Equal(tc.to) {
				t.Fatalf("timeWindow = %v, %v, %v; want %v, %v", from, to, err, tc.from, tc.to)
			}
		})
	}
}
