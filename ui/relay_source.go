package ui

import (
	"context"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/relay"
)

// relaySource adapts a relay's merged view of many collectors.
type relaySource struct {
	relay *relay.Relay
}

// RelaySource makes a relay a FlowSource: live flows are the relay's merged
// stream (ordered within its merge window), queries go to every peer with
// the chips pushed down. Unreachable nodes make answers partial, never fail
// them.
func RelaySource(r *relay.Relay) FlowSource {
	return &relaySource{relay: r}
}

func (s *relaySource) Follow(ctx context.Context, fn func(*api.Flow)) error {
	_, err := s.relay.Flows(ctx, relay.Request{Follow: true}, relay.FlowsOptions{},
		func(it *relay.Item) error {
			f, err := it.Parse()
			if err != nil {
				return nil // a peer's bad line is its own problem, not the stream's
			}
			fn(f)
			return nil
		})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (s *relaySource) Query(ctx context.Context, q Query, fn func(*api.Flow) error) error {
	req := relay.Request{Chips: q.Chips, Since: q.Since, Until: q.Until, Last: q.Last}
	if q.Filter != nil {
		req.Match = q.Filter
	}
	_, err := s.relay.Flows(ctx, req, relay.FlowsOptions{}, func(it *relay.Item) error {
		f, err := it.Parse()
		if err != nil {
			return err
		}
		return fn(f)
	})
	return err
}

// relayHistory asks every collector behind a relay for its ClickHouse
// history.
type relayHistory struct {
	relay *relay.Relay
}

// RelayHistory makes the collectors' ClickHouse history, through a relay, a
// HistorySource. Collectors without --clickhouse answer with an error and
// are reported as unavailable: the answer is partial, not failed.
func RelayHistory(r *relay.Relay) HistorySource {
	return &relayHistory{relay: r}
}

func (h *relayHistory) History(ctx context.Context, q Query, fn func(*api.Flow) error) error {
	req := relay.Request{Chips: q.Chips, Since: q.Since, Until: q.Until, Last: q.Last, Source: "clickhouse"}
	if q.Filter != nil {
		req.Match = q.Filter
	}
	_, err := h.relay.Flows(ctx, req, relay.FlowsOptions{}, func(it *relay.Item) error {
		f, err := it.Parse()
		if err != nil {
			return err
		}
		return fn(f)
	})
	return err
}
