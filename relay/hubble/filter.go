package hubble

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/periscope-dev/periscope/filter"
)

// CompileFilters reads a GetFlows request's whitelist and blacklist into a
// filter.Set: a flow passes when it matches ANY whitelist FlowFilter (or the
// whitelist is empty) and NO blacklist FlowFilter. Within one FlowFilter
// every field set must match (AND) and a field matches when any of its
// values does (OR), as in Hubble: each field is one chip term. A field
// Periscope has no filter kind for is an error naming it, e.g.
// `whitelist[0].source_service: not supported by Periscope`; so is a value
// it cannot read, and, as in Hubble, an HTTP field beside event types that
// leave out L7 events. CEL expressions (experimental.cel_expression) are
// compiled here, once, into a filter.Predicate of their FlowFilter; a set
// holding one cannot be said as chips, so a relay matches it itself.
func CompileFilters(whitelist, blacklist []*flowpb.FlowFilter) (*filter.Set, error) {
	var allow, deny []*filter.Filter
	for i, ff := range whitelist {
		f, err := compile(ff)
		if err != nil {
			return nil, fmt.Errorf("whitelist[%d].%w", i, err)
		}
		allow = append(allow, f)
	}
	for i, ff := range blacklist {
		f, err := compile(ff)
		if err != nil {
			return nil, fmt.Errorf("blacklist[%d].%w", i, err)
		}
		deny = append(deny, f)
	}
	return filter.NewSet(allow, deny), nil
}

// experimentalField holds Hubble's CEL expressions (cel_expression), which
// no chip kind says: they become a filter.Predicate (cel.go), matched in Go
// by every reader, never pushed down as chips or SQL.
const experimentalField protoreflect.Name = "experimental"

// fieldChips maps every FlowFilter field a filter kind reads (filter.Kinds'
// Hubble names) to the chip text before its values: "from:ip=",
// "verdict=". It is derived from the kinds, never written by hand.
var fieldChips = func() map[protoreflect.Name]string {
	m := map[protoreflect.Name]string{}
	for _, k := range filter.Kinds() {
		switch len(k.Hubble) {
		case 1:
			m[protoreflect.Name(k.Hubble[0])] = k.Name + "="
		case 2:
			m[protoreflect.Name(k.Hubble[0])] = "from:" + k.Name + "="
			m[protoreflect.Name(k.Hubble[1])] = "to:" + k.Name + "="
		}
	}
	return m
}()

// compile reads one FlowFilter into a Filter: every field's values as
// chips of its kind.
func compile(ff *flowpb.FlowFilter) (*filter.Filter, error) {
	type field struct {
		name  protoreflect.Name
		chips []string
	}
	var fields []field
	var all []string
	var err error
	var preds []filter.Predicate
	ff.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Name() == experimentalField {
			exprs := ff.GetExperimental().GetCelExpression()
			if len(exprs) == 0 {
				return true
			}
			p, cerr := celPredicate(exprs)
			if cerr != nil {
				err = fmt.Errorf("%s.%w", experimentalField, cerr)
				return false
			}
			preds = append(preds, p)
			return true
		}
		prefix, ok := fieldChips[fd.Name()]
		if !ok {
			err = fmt.Errorf("%s: not supported by Periscope", fd.Name())
			return false
		}
		vals, verr := chipValues(fd, v)
		if verr != nil {
			err = fmt.Errorf("%s: %w", fd.Name(), verr)
			return false
		}
		f := field{name: fd.Name()}
		for _, val := range vals {
			f.chips = append(f.chips, prefix+val)
		}
		fields = append(fields, f)
		all = append(all, f.chips...)
		return true
	})
	if err != nil {
		return nil, err
	}
	if err := checkHTTPEventTypes(ff); err != nil {
		return nil, err
	}
	f, err := filter.Parse(all)
	if err == nil {
		for _, p := range preds {
			f = f.With(p)
		}
		return f, nil
	}
	for _, fl := range fields { // name the field whose value is bad
		if _, ferr := filter.Parse(fl.chips); ferr != nil {
			return nil, fmt.Errorf("%s: %w", fl.name, ferr)
		}
	}
	return nil, err
}

// chipValues writes a repeated field's values as chip values: strings as
// they are (blank ones are skipped), numbers and enums in decimal (filter
// kinds read api's enums, which number them as Hubble does), booleans as
// true or false, messages by messageChips.
func chipValues(fd protoreflect.FieldDescriptor, v protoreflect.Value) ([]string, error) {
	if !fd.IsList() {
		return nil, fmt.Errorf("not a repeated field")
	}
	l := v.List()
	out := make([]string, 0, l.Len())
	for i := range l.Len() {
		e := l.Get(i)
		switch fd.Kind() {
		case protoreflect.StringKind:
			if s := strings.TrimSpace(e.String()); s != "" {
				out = append(out, s)
			}
		case protoreflect.Uint32Kind:
			out = append(out, strconv.FormatUint(e.Uint(), 10))
		case protoreflect.BoolKind:
			out = append(out, strconv.FormatBool(e.Bool()))
		case protoreflect.EnumKind:
			out = append(out, strconv.FormatInt(int64(e.Enum()), 10))
		case protoreflect.MessageKind:
			conv, ok := messageChips[fd.Message().FullName()]
			if !ok {
				return nil, fmt.Errorf("values of type %s are not supported by Periscope", fd.Message().FullName())
			}
			s, err := conv(e.Message().Interface())
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		default:
			return nil, fmt.Errorf("values of kind %s are not supported by Periscope", fd.Kind())
		}
	}
	return out, nil
}

// messageChips write the FlowFilter values that are messages as chip
// values.
var messageChips = map[protoreflect.FullName]func(proto.Message) (string, error){
	"flow.TCPFlags": func(m proto.Message) (string, error) { return tcpFlagChip(m.(*flowpb.TCPFlags)), nil },
	"flow.Workload": func(m proto.Message) (string, error) {
		w := m.(*flowpb.Workload)
		if w.GetKind() != "" || w.GetName() == "" {
			return "", fmt.Errorf("only a workload name is supported (Periscope has no workload kinds)")
		}
		return w.GetName(), nil
	},
	"flow.HTTPHeader": func(m proto.Message) (string, error) {
		h := m.(*flowpb.HTTPHeader)
		return h.GetKey() + ":" + h.GetValue(), nil
	},
	"flow.NetworkInterface": func(m proto.Message) (string, error) {
		i := m.(*flowpb.NetworkInterface)
		s := i.GetName()
		if i.GetIndex() != 0 {
			s += ":" + strconv.FormatUint(uint64(i.GetIndex()), 10)
		}
		return s, nil
	},
	// TYPE, or TYPE:SUBTYPE when the sub-type is matched (hubble observe
	// --type trace:to-endpoint sends 4:0): a trace's sub-type is a trace
	// observation point, a drop's a drop reason (filter's event-type).
	"flow.EventTypeFilter": func(m proto.Message) (string, error) {
		et := m.(*flowpb.EventTypeFilter)
		s := strconv.FormatInt(int64(et.GetType()), 10)
		if !et.GetMatchSubType() {
			return s, nil
		}
		if et.GetSubType() < 0 {
			return "", fmt.Errorf("sub_type %d: not a sub-type", et.GetSubType())
		}
		return s + ":" + strconv.FormatInt(int64(et.GetSubType()), 10), nil
	},
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

// httpFields are the FlowFilter fields Hubble's HTTP filter reads.
var httpFields = []protoreflect.Name{"http_status_code", "http_method", "http_path", "http_url", "http_header"}

// checkHTTPEventTypes refuses, as Hubble does, an HTTP field in a
// FlowFilter whose event types leave out L7 events: together they could
// match no flow.
func checkHTTPEventTypes(ff *flowpb.FlowFilter) error {
	types := ff.GetEventType()
	if len(types) == 0 || slices.ContainsFunc(types, func(t *flowpb.EventTypeFilter) bool { return t.GetType() == filter.EventTypeL7 }) {
		return nil
	}
	fields := ff.ProtoReflect().Descriptor().Fields()
	for _, name := range httpFields {
		if ff.ProtoReflect().Has(fields.ByName(name)) {
			return fmt.Errorf("%s: filtering by an HTTP field needs the event type filter to match l7 events (--type l7)", name)
		}
	}
	return nil
}
