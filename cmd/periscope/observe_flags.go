package main

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/periscope-dev/periscope/filter"
)

// chipList collects filter chips from flags in command-line order, which
// --not needs: it negates the NEXT filter flag, as in `hubble observe`.
type chipList struct {
	chips      []string
	negateNext bool
}

// filterFlag is one filter flag (e.g. --to-port); every use adds a chip.
type filterFlag struct {
	list   *chipList
	prefix string // chip text before the value, e.g. "to:port="; "" for --filter
	values []string
}

// Set turns one use of the flag into a chip, negated if --not came just before.
func (f *filterFlag) Set(v string) error {
	chip := f.prefix + v
	if f.list.negateNext {
		f.list.negateNext = false
		if rest, ok := strings.CutPrefix(chip, "!"); ok { // --not --filter '!x' is x
			chip = rest
		} else {
			chip = "!" + chip
		}
	}
	if _, err := filter.Parse([]string{chip}); err != nil {
		return err
	}
	f.list.chips = append(f.list.chips, chip)
	f.values = append(f.values, v)
	return nil
}

// String returns the values given so far.
func (f *filterFlag) String() string { return strings.Join(f.values, ",") }

// Type names the value in help output.
func (f *filterFlag) Type() string {
	if f.prefix == "" {
		return "chip"
	}
	return "filter"
}

// notFlag is --not: a boolean flag that negates the next filter flag.
type notFlag struct{ list *chipList }

// Set marks the next filter flag as negated (--not=false takes that back).
func (n notFlag) Set(v string) error {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return fmt.Errorf("--not takes no value: %w", err)
	}
	n.list.negateNext = b
	return nil
}

// String is "false": --not holds no value of its own.
func (n notFlag) String() string { return "false" }

// Type marks --not as a boolean flag for help output.
func (n notFlag) Type() string { return "bool" }

// IsBoolFlag lets --not be given without a value.
func (n notFlag) IsBoolFlag() bool { return true }

// filterFlagSpec is one filter flag: its name, shorthand, chip kind and help.
type filterFlagSpec struct {
	name, short, chip, help string
}

// filterFlagSpecs are the filter flags, named as hubble observe names them.
var filterFlagSpecs = []filterFlagSpec{
	{"ip", "", "ip=", "Show flows from or to this IP address or CIDR prefix"},
	{"from-ip", "", "from:ip=", "Show flows from this IP address or CIDR prefix"},
	{"to-ip", "", "to:ip=", "Show flows to this IP address or CIDR prefix"},
	{"port", "", "port=", "Show flows with this source or destination port"},
	{"from-port", "", "from:port=", "Show flows with this source port"},
	{"to-port", "", "to:port=", "Show flows with this destination port"},
	{"protocol", "", "protocol=", "Show flows of this protocol (tcp, udp, sctp, icmp, icmpv4, icmpv6)"},
	{"label", "l", "label=", "Show flows from or to endpoints matching this label selector (e.g. app=frontend,tier!=db)"},
	{"from-label", "", "from:label=", "Show flows from endpoints matching this label selector"},
	{"to-label", "", "to:label=", "Show flows to endpoints matching this label selector"},
	{"pod", "", "pod=", "Show flows from or to pods with this name prefix ([namespace/]name)"},
	{"from-pod", "", "from:pod=", "Show flows from pods with this name prefix ([namespace/]name)"},
	{"to-pod", "", "to:pod=", "Show flows to pods with this name prefix ([namespace/]name)"},
	{"namespace", "n", "namespace=", "Show flows from or to this namespace"},
	{"from-namespace", "", "from:namespace=", "Show flows from this namespace"},
	{"to-namespace", "", "to:namespace=", "Show flows to this namespace"},
	{"workload", "", "workload=", "Show flows from or to this workload"},
	{"from-workload", "", "from:workload=", "Show flows from this workload"},
	{"to-workload", "", "to:workload=", "Show flows to this workload"},
	{"identity", "", "identity=", "Show flows from or to this security identity"},
	{"from-identity", "", "from:identity=", "Show flows from this security identity"},
	{"to-identity", "", "to:identity=", "Show flows to this security identity"},
	{"verdict", "", "verdict=", "Show flows with this verdict (FORWARDED, DROPPED, AUDIT, ERROR)"},
	{"type", "t", "type=", "Show flows of this type (l3_l4, l7, sock)"},
	{"tcp-flags", "", "tcp-flag=", "Show TCP flows that saw these flags (SYN, ACK, FIN, RST, ...; SYN,ACK means both)"},
	{"node-name", "", "node=", "Show flows observed on this node (glob with * allowed)"},
	{"filter", "", "", "Add a filter chip [!][from:|to:]kind=value, as the UI writes them"},
}

// addFilterFlags registers the filter flags and --not on fs, recording every
// use into list in command-line order.
func addFilterFlags(fs *pflag.FlagSet, list *chipList) {
	for _, s := range filterFlagSpecs {
		help := s.help + "; repeat to OR"
		if s.chip == "" {
			help = s.help + "; repeatable"
		}
		fs.VarP(&filterFlag{list: list, prefix: s.chip}, s.name, s.short, help)
	}
	fl := fs.VarPF(notFlag{list: list}, "not", "", "Negate the next filter flag (e.g. --not --verdict FORWARDED)")
	fl.NoOptDefVal = "true"
}

// window is which flows to ask for: how many, and between which times.
type window struct {
	last, first  int
	all, follow  bool
	since, until string
	source       string // "" or "ring": the collector's memory; "clickhouse": history
}

// query builds the /api/v1/flows query from chips and w, as of now.
// Like hubble observe: without --first, --all, --since, --until or --follow
// it asks for the last 20 flows; with only --follow it streams new flows.
func (w window) query(chips []string, now time.Time) (url.Values, error) {
	q := url.Values{}
	for _, c := range chips {
		q.Add("filter", c)
	}
	switch {
	case w.all && (w.first > 0 || w.last > 0):
		return nil, fmt.Errorf("--all cannot be combined with --first or --last")
	case w.first > 0 && w.last > 0:
		return nil, fmt.Errorf("--first cannot be combined with --last")
	case w.first > 0 && w.follow:
		return nil, fmt.Errorf("--first cannot be combined with --follow")
	case w.first < 0 || w.last < 0:
		return nil, fmt.Errorf("--first and --last must not be negative")
	case w.all:
		q.Set("all", "1")
	case w.first > 0:
		q.Set("first", strconv.Itoa(w.first))
	case w.last > 0:
		q.Set("last", strconv.Itoa(w.last))
	case !w.follow && w.since == "" && w.until == "":
		q.Set("last", "20")
	}
	for _, t := range []struct{ flag, param, value string }{{"--since", "since", w.since}, {"--until", "until", w.until}} {
		if t.value == "" {
			continue
		}
		ts, err := parseTimeArg(t.value, now)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.flag, err)
		}
		q.Set(t.param, ts.UTC().Format(time.RFC3339Nano))
	}
	if w.follow {
		if w.until != "" {
			return nil, fmt.Errorf("--until cannot be combined with --follow")
		}
		q.Set("follow", "1")
	}
	switch w.source {
	case "", "ring":
	case "clickhouse":
		if w.follow {
			return nil, fmt.Errorf("--source clickhouse is history: it cannot be combined with --follow")
		}
		q.Set("source", w.source)
	default:
		return nil, fmt.Errorf("--source %q: want ring or clickhouse", w.source)
	}
	return q, nil
}

// parseTimeArg reads a --since/--until value: a duration before now ("5m",
// "1h30m") or an RFC 3339 timestamp.
func parseTimeArg(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("duration %q must not be negative", s)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, now.Location()); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither a duration (5m, 1h) nor an RFC 3339 time (2006-01-02T15:04:05Z)", s)
}
