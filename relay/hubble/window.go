package hubble

import (
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// timeWindow reads a request's since and until, either of which may be
// unset (the zero time), as GetFlows and GetAgentEvents check them: each a
// valid timestamp, until not before since. Its error is an
// InvalidArgument status.
func timeWindow(since, until *timestamppb.Timestamp) (from, to time.Time, err error) {
	if since != nil {
		if err := since.CheckValid(); err != nil {
			return time.Time{}, time.Time{}, status.Errorf(codes.InvalidArgument, "since: %v", err)
		}
		from = since.AsTime()
	}
	if until != nil {
		if err := until.CheckValid(); err != nil {
			return time.Time{}, time.Time{}, status.Errorf(codes.InvalidArgument, "until: %v", err)
		}
		to = until.AsTime()
	}
	if !from.IsZero() && !to.IsZero() && to.Before(from) {
		return time.Time{}, time.Time{}, status.Error(codes.InvalidArgument, "until is before since")
	}
	return from, to, nil
}
