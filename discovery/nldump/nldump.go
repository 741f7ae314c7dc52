// Package nldump reads netlink dumps (links, addresses, routes) whole. The
// kernel marks a dump it was changing while it was read as interrupted
// (NLM_F_DUMP_INTR; netlink.ErrDumpInterrupted) and its result as possibly
// incomplete: on a node where pods come and go that is an everyday event,
// not a failure, so the dump is read again. It also dumps another network
// namespace's addresses from the host (NetnsAddrs). It owns nothing else.
package nldump

import (
	"errors"
	"time"

	"github.com/vishvananda/netlink"
)

// Attempts bounds the reads of one dump that keeps being interrupted.
const Attempts = 10

// Retry calls dump until it returns something other than an interrupted
// dump, at most Attempts times, with a short growing pause between calls;
// it returns the last result.
func Retry[T any](dump func() (T, error)) (T, error) {
	var v T
	var err error
	for i := range Attempts {
		if v, err = dump(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
		time.Sleep(time.Duration(i+1) * 2 * time.Millisecond)
	}
	return v, err
}
