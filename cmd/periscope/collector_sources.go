package main

import (
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/datapath"
)

// flowSources are the collector's flow sources, the kernel datapath first.
// A new producer of flows (an access-log stream, a DNS proxy) is one more
// entry here; the collector runs each in its own goroutine.
func flowSources(dp *datapath.Datapath, more ...collector.Source) []collector.Source {
	return append([]collector.Source{dp}, more...)
}
