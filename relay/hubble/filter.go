package hubble

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/filter"
)

// Filters is a GetFlows request's whitelist and blacklist, compiled: a flow
// passes when it matches ANY whitelist FlowFilter (or the whitelist is empty)
// and NO blacklist FlowFilter. Within one FlowFilter every field set must
// match (AND) and a field matches when any of its values does (OR), as in
// Hubble. It satisfies the collector's and the relay's Matcher.
type Filters struct {
	white, black []*compiled
}

// compiled is one FlowFilter: the fields Periscope's chips express, and
// predicates for the others.
type compiled struct {
	chips []string
	f     *filter.Filter
	terms int // distinct chip terms, for pushing a blacklist down
	extra []func(*api.Flow) bool
}

func (c *compiled) match(fl *api.Flow) bool {
	if !c.f.Match(fl) {
		return false
	}
	for _, x := range c.extra {
		if !x(fl) {
			return false
		}
	}
	return true
}

// Match reports whether fl passes the whitelist and not the blacklist.
func (fs *Filters) Match(fl *api.Flow) bool {
	if fs == nil {
		return true
	}
	if len(fs.white) > 0 && !slices.ContainsFunc(fs.white, func(c *compiled) bool { return c.match(fl) }) {
		return false
	}
	return !slices.ContainsFunc(fs.black, func(c *compiled) bool { return c.match(fl) })
}

// Empty reports whether the filters select every flow.
func (fs *Filters) Empty() bool { return fs == nil || len(fs.white)+len(fs.black) == 0 }

// Chips returns the filters as Periscope filter chips when chips can say
// exactly the same thing (at most one whitelist FlowFilter, and at most one
// blacklist FlowFilter of a single field, none using fields without a chip),
// so that a relay can forward them to its peers; ok is false otherwise.
func (fs *Filters) Chips() (chips []string, ok bool) {
	if fs.Empty() {
		return nil, true
	}
	if len(fs.white) > 1 || len(fs.black) > 1 {
		return nil, false
	}
	for _, c := range fs.white {
		if len(c.extra) > 0 {
			return nil, false
		}
		chips = append(chips, c.chips...)
	}
	for _, c := range fs.black {
		// A negated chip term rejects a flow matching any of its values,
		// which is a one-field FlowFilter exactly.
		if len(c.extra) > 0 || c.terms != 1 {
			return nil, false
		}
		for _, ch := range c.chips {
			chips = append(chips, "!"+ch)
		}
	}
	return chips, true
}

// CompileFilters compiles a GetFlows request's whitelist and blacklist. A
// field Periscope cannot match is an error naming it, e.g.
// `whitelist[0].http_status_code: not supported by Periscope`; so is a
// value it cannot read.
func CompileFilters(whitelist, blacklist []*flowpb.FlowFilter) (*Filters, error) {
	fs := &Filters{}
	for i, ff := range whitelist {
		c, err := compile(ff)
		if err != nil {
			return nil, fmt.Errorf("whitelist[%d].%w", i, err)
		}
		fs.white = append(fs.white, c)
	}
	for i, ff := range blacklist {
		c, err := compile(ff)
		if err != nil {
			return nil, fmt.Errorf("blacklist[%d].%w", i, err)
		}
		fs.black = append(fs.black, c)
	}
	return fs, nil
}

// sidedChips maps FlowFilter string fields to chip prefixes.
var sidedChips = map[protoreflect.Name]string{
	"source_ip":         "from:ip=",
	"destination_ip":    "to:ip=",
	"source_pod":        "from:pod=",
	"destination_pod":   "to:pod=",
	"source_label":      "from:label=",
	"destination_label": "to:label=",
	"source_fqdn":       "from:dns=",
	"destination_fqdn":  "to:dns=",
	"source_port":       "from:port=",
	"destination_port":  "to:port=",
	"protocol":          "protocol=",
	"node_name":         "node=",
}

func compile(ff *flowpb.FlowFilter) (*compiled, error) {
	c := &compiled{}
	var err error
	ff.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := fd.Name()
		if prefix, ok := sidedChips[name]; ok {
			terms := 0
			for i := range v.List().Len() {
				s := strings.TrimSpace(v.List().Get(i).String())
				if s == "" {
					continue
				}
				c.chips = append(c.chips, prefix+s)
				terms = 1
			}
			c.terms += terms
			return true
		}
		switch name {
		case "source_identity", "destination_identity":
			prefix := "from:identity="
			if name == "destination_identity" {
				prefix = "to:identity="
			}
			for _, id := range listOf[uint32](v) {
				c.chips = append(c.chips, prefix+strconv.FormatUint(uint64(id), 10))
			}
			c.terms++
		case "verdict":
			for _, vd := range listOf[flowpb.Verdict](v) {
				if vd == flowpb.Verdict_VERDICT_UNKNOWN {
					err = fmt.Errorf("%s: VERDICT_UNKNOWN matches no flow", name)
					return false
				}
				c.chips = append(c.chips, "verdict="+api.Verdict(vd).String())
			}
			c.terms++
		case "tcp_flags":
			for _, tf := range listOf[*flowpb.TCPFlags](v) {
				c.chips = append(c.chips, "tcp-flag="+tcpFlagChip(tf))
			}
			c.terms++
		case "source_workload", "destination_workload":
			prefix := "from:workload="
			if name == "destination_workload" {
				prefix = "to:workload="
			}
			for _, w := range listOf[*flowpb.Workload](v) {
				if w.GetKind() != "" || w.GetName() == "" {
					err = fmt.Errorf("%s: only a workload name is supported (Periscope has no workload kinds)", name)
					return false
				}
				c.chips = append(c.chips, prefix+w.GetName())
			}
			c.terms++
		case "traffic_direction":
			dirs := listOf[flowpb.TrafficDirection](v)
			c.extra = append(c.extra, func(f *api.Flow) bool {
				return slices.Contains(dirs, flowpb.TrafficDirection(f.TrafficDirection))
			})
		case "reply":
			replies := listOf[bool](v)
			c.extra = append(c.extra, func(f *api.Flow) bool { return slices.Contains(replies, f.IsReply) })
		case "ip_version":
			vers := listOf[flowpb.IPVersion](v)
			c.extra = append(c.extra, func(f *api.Flow) bool { return slices.Contains(vers, flowpb.IPVersion(f.IP.Version)) })
		case "drop_reason_desc":
			reasons := listOf[flowpb.DropReason](v)
			c.extra = append(c.extra, func(f *api.Flow) bool {
				return f.Verdict == api.VerdictDropped && slices.Contains(reasons, flowpb.DropReason(f.DropReason))
			})
		case "uuid":
			uuids := listOf[string](v)
			c.extra = append(c.extra, func(f *api.Flow) bool { return slices.Contains(uuids, formatUUID(&f.UUID)) })
		case "interface":
			ifs := listOf[*flowpb.NetworkInterface](v)
			c.extra = append(c.extra, func(f *api.Flow) bool {
				return slices.ContainsFunc(ifs, func(i *flowpb.NetworkInterface) bool {
					return (i.GetIndex() == 0 || i.GetIndex() == f.Interface.Index) &&
						(i.GetName() == "" || i.GetName() == f.Interface.Name)
				})
			})
		case "event_type":
			types := listOf[*flowpb.EventTypeFilter](v)
			c.extra = append(c.extra, func(f *api.Flow) bool {
				return slices.ContainsFunc(types, func(et *flowpb.EventTypeFilter) bool { return eventTypeMatches(et.GetType(), f) })
			})
		default:
			err = fmt.Errorf("%s: not supported by Periscope", name)
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	f, perr := filter.Parse(c.chips)
	if perr != nil {
		return nil, fieldError(perr)
	}
	c.f = f
	return c, nil
}

// fieldError names the Hubble field behind a chip's parse error.
func fieldError(err error) error {
	msg := err.Error()
	for name, prefix := range sidedChips {
		if strings.Contains(msg, `"`+prefix) {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	switch {
	case strings.Contains(msg, `"from:identity=`), strings.Contains(msg, `"to:identity=`):
		return fmt.Errorf("identity: %w", err)
	case strings.Contains(msg, `"tcp-flag=`):
		return fmt.Errorf("tcp_flags: %w", err)
	}
	return fmt.Errorf("filter: %w", err)
}

// eventTypeMatches maps Cilium's monitor message types onto Periscope's
// flows: drops are drop events, other L3/L4 and socket flows are trace (and
// policy verdict) events, L7 flows are L7 events. Sub-types are ignored.
func eventTypeMatches(typ int32, f *api.Flow) bool {
	switch typ {
	case monitorDrop:
		return f.Verdict == api.VerdictDropped
	case monitorTrace:
		return f.Verdict != api.VerdictDropped && (f.Type == api.FlowTypeL3L4 || f.Type == api.FlowTypeSock)
	case monitorPolicyVerdict:
		return f.Type == api.FlowTypeL3L4
	case monitorL7:
		return f.Type == api.FlowTypeL7
	}
	return false
}

// tcpFlagChip writes a TCPFlags message as the chip value "SYN,ACK": every
// flag set must be present.
func tcpFlagChip(tf *flowpb.TCPFlags) string {
	var names []string
	for _, fl := range []struct {
		set  bool
		name string
	}{
		{tf.GetSYN(), "SYN"}, {tf.GetACK(), "ACK"}, {tf.GetRST(), "RST"}, {tf.GetFIN(), "FIN"},
		{tf.GetPSH(), "PSH"}, {tf.GetURG(), "URG"}, {tf.GetECE(), "ECE"}, {tf.GetCWR(), "CWR"}, {tf.GetNS(), "NS"},
	} {
		if fl.set {
			names = append(names, fl.name)
		}
	}
	if len(names) == 0 {
		return "none" // rejected by filter.Parse: an empty TCPFlags means nothing
	}
	return strings.Join(names, ",")
}

// listOf reads a repeated field's values.
func listOf[T any](v protoreflect.Value) []T {
	l := v.List()
	out := make([]T, 0, l.Len())
	for i := range l.Len() {
		e := l.Get(i)
		var x any
		switch any(*new(T)).(type) {
		case uint32:
			x = uint32(e.Uint())
		case bool:
			x = e.Bool()
		case string:
			x = e.String()
		case flowpb.Verdict:
			x = flowpb.Verdict(e.Enum())
		case flowpb.TrafficDirection:
			x = flowpb.TrafficDirection(e.Enum())
		case flowpb.IPVersion:
			x = flowpb.IPVersion(e.Enum())
		case flowpb.DropReason:
			x = flowpb.DropReason(e.Enum())
		default: // messages
			x = e.Message().Interface()
		}
		out = append(out, x.(T))
	}
	return out
}
