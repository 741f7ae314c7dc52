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

// filterFlagSpec is one filter flag: its name, shorthand, chip prefix,
// help, and the value it takes when given without one ("" when it needs one).
type filterFlagSpec struct {
	name, short, chip, help, implied string
}

// filterFlagSpecs are the filter flags: those of the filter kinds
// (filter.Kinds; named as hubble observe names them, --flag, --from-flag and
// --to-flag for a kind with sides), then --filter.
func filterFlagSpecs() []filterFlagSpec {
	var specs []filterFlagSpec
	for _, k := range filter.Kinds() {
		switch {
		case k.Flag == "":
		case !k.Sided:
			specs = append(specs, filterFlagSpec{k.Flag, k.Short, k.Name + "=", k.Help, k.FlagImplied})
		default:
			either, from, to := sideHelp(k.Help)
			specs = append(specs,
				filterFlagSpec{k.Flag, k.Short, k.Name + "=", either, k.FlagImplied},
				filterFlagSpec{"from-" + k.Flag, "", "from:" + k.Name + "=", from, k.FlagImplied},
				filterFlagSpec{"to-" + k.Flag, "", "to:" + k.Name + "=", to, k.FlagImplied})
		}
	}
	return append(specs, filterFlagSpec{name: "filter", help: "Add a filter chip [!][from:|to:]kind=value, as the UI writes them"})
}

// sideHelp expands the "{either|from|to}" group of a sided kind's help into
// the help of its three flags.
func sideHelp(help string) (either, from, to string) {
	open, end := strings.Index(help, "{"), strings.Index(help, "}")
	if open < 0 || end < open {
		return help, help, help
	}
	words := strings.Split(help[open+1:end], "|")
	if len(words) != 3 {
		return help, help, help
	}
	pre, post := help[:open], help[end+1:]
	return pre + words[0] + post, pre + words[1] + post, pre + words[2] + post
}

// addFilterFlags registers the filter flags and --not on fs, recording every
// use into list in command-line order.
func addFilterFlags(fs *pflag.FlagSet, list *chipList) {
	for _, s := range filterFlagSpecs() {
		help := s.help + "; repeat to OR"
		if s.chip == "" {
			help = s.help + "; repeatable"
		}
		fl := fs.VarPF(&filterFlag{list: list, prefix: s.chip}, s.name, s.short, help)
		if s.implied != "" {
			fl.NoOptDefVal = s.implied
		}
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
