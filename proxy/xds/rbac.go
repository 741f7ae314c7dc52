package xds

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	xcore "github.com/cncf/xds/go/xds/core/v3"
	xmatcher "github.com/cncf/xds/go/xds/type/matcher/v3"
	accesslog "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacconf "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbac "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netinputs "github.com/envoyproxy/go-control-plane/envoy/extensions/matching/common_inputs/network/v3"
	ipmatcher "github.com/envoyproxy/go-control-plane/envoy/extensions/matching/input_matchers/ip/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/periscope-dev/periscope/api"
)

// Rules are a listener's L7 policy. No groups: visibility only, every
// request passes.
type Rules struct {
	// Groups partition the peers by address: each address is in at most
	// one group, and one in none is denied.
	Groups []PeerGroup
	// Audit: requests are judged and the denials logged (AUDIT), never
	// refused.
	Audit bool
}

// Restricts reports whether the rules judge requests at all.
func (r *Rules) Restricts() bool { return len(r.Groups) > 0 }

// PeerGroup is some peers and the requests they may send.
type PeerGroup struct {
	// Policies name the deciding policies in the flow record of a denied
	// request.
	Policies []api.PolicyRef
	Peers    Peers
	// AllowAll: every request passes.
	AllowAll bool
	// HTTP: otherwise a request passes when it matches one; none: nothing
	// passes.
	HTTP []HTTPRule
}

// Peers are peer addresses: those in a Range, and with Rest every address
// outside all of RestExcept too.
type Peers struct {
	Ranges     []Range
	Rest       bool
	RestExcept []netip.Prefix
}

// Range is the addresses of Prefix but of none of Except.
type Range struct {
	Prefix netip.Prefix
	Except []netip.Prefix
}

// HTTPRule is one allowed shape of request: Method, Path (with the query)
// and Host (:authority) are RE2 regular expressions Envoy matches against
// the whole value ("" matches all); every header must match.
type HTTPRule struct {
	Method, Path, Host string
	Headers            []Header
}

// Header must be present, with exactly Value unless Value is "".
type Header struct {
	Name, Value string
}

// Names of the RBAC filter's results (Envoy's): the response code details
// of a request it denied name the policy that matched, and with audit its
// shadow engine's dynamic metadata says what it would have done.
const (
	RBACFilter           = "envoy.filters.http.rbac"
	RBACDeniedDetail     = "rbac_access_denied_matched_policy["
	ShadowResultKey      = "shadow_engine_result"
	ShadowPolicyKey      = "shadow_effective_policy_id"
	ShadowDenied         = "denied"
	deniedBody           = "Access denied\r\n"
	policyNameSeparator  = ","
	policyFieldSeparator = ":"
	policyIndexSeparator = "#"
)

// PolicyRefs returns the policies a denying RBAC action name (from
// PolicyName) names; nil for a name that is not one.
func PolicyRefs(name string) []api.PolicyRef {
	name, _, _ = strings.Cut(name, policyIndexSeparator)
	if name == "" {
		return nil
	}
	var out []api.PolicyRef
	for _, p := range strings.Split(name, policyNameSeparator) {
		kind, rest, ok1 := strings.Cut(p, policyFieldSeparator)
		ref, rev, ok2 := strings.Cut(rest, policyFieldSeparator)
		n, err := strconv.ParseUint(rev, 10, 64)
		if !ok1 || !ok2 || err != nil {
			return nil
		}
		r := api.ParsePolicyRef(ref, kind)
		r.Revision = n
		out = append(out, r)
	}
	return out
}

// dotSegmentParams matches a path with a "." or ".." segment carrying
// ";parameters": Envoy does not resolve it, but some servers (Tomcat,
// Jetty) treat "..;x" as "..", so "/public/..;/admin" would pass a
// "/public/.*" rule and reach /admin there. Such requests are denied.
var dotSegmentParams = `[^?]*/\.\.?;.*`

// rbacFilter is the listener's RBAC filter, in Envoy's matcher form
// (header inputs see a repeated header's values joined by ",", so a
// second value cannot slip past a header rule, as it can past the older
// rules form, which matches any one value): the first match of
//
//   - per group that does not allow everything: its peers' requests that
//     none of its rules allows (and, whatever the rules, hostile
//     dot-segment parameters) → DENY, named by the group's policies;
//   - an address in no group → DENY;
//   - anything else → ALLOW.
//
// The peer is the client (the downstream connection's address) at an
// ingress listener, the server (the original destination) at an egress
// one. With Audit the same matcher is the shadow one: it judges and
// reports (dynamic metadata), the request passes.
func rbacFilter(r Rules, egress bool) (*hcm.HttpFilter, error) {
	list := &xmatcher.Matcher_MatcherList{}
	var all []*predicate
	var refs []api.PolicyRef
	for i, g := range r.Groups {
		refs = append(refs, g.Policies...)
		peers, err := peersPredicate(g.Peers, egress)
		if err != nil {
			return nil, fmt.Errorf("group %d: %w", i, err)
		}
		all = append(all, peers)
		if g.AllowAll {
			continue
		}
		deny := peers
		if len(g.HTTP) > 0 {
			var allowed []*predicate
			for j, h := range g.HTTP {
				p, err := httpPredicate(h)
				if err != nil {
					return nil, fmt.Errorf("group %d rule %d: %w", i, j, err)
				}
				allowed = append(allowed, p)
			}
			deny = and(peers, or(not(or(allowed...)), headerRegex(":path", dotSegmentParams)))
		}
		list.Matchers = append(list.Matchers, rbacAction(deny, PolicyName(g.Policies, i), rbacconf.RBAC_DENY))
	}
	list.Matchers = append(list.Matchers,
		rbacAction(not(or(all...)), PolicyName(dedupe(refs), len(r.Groups)), rbacconf.RBAC_DENY))
	m := &xmatcher.Matcher{
		MatcherType: &xmatcher.Matcher_MatcherList_{MatcherList: list},
		OnNoMatch:   rbacOnMatch(AllowedName, rbacconf.RBAC_ALLOW),
	}
	f := &rbac.RBAC{Matcher: m}
	if r.Audit {
		f = &rbac.RBAC{ShadowMatcher: m}
	}
	return &hcm.HttpFilter{Name: RBACFilter, ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: typed(f)}}, nil
}

// AllowedName names the RBAC action of requests no policy denies.
const AllowedName = "allowed"

// PolicyName names group i's RBAC action by its deciding policies:
// "Kind:namespace/name:revision,...#i" (names and kinds have none of
// ",:#" in them).
func PolicyName(policies []api.PolicyRef, i int) string {
	parts := make([]string, len(policies))
	for j, p := range policies {
		parts[j] = p.Kind + policyFieldSeparator + p.Ref() + policyFieldSeparator + strconv.FormatUint(p.Revision, 10)
	}
	return strings.Join(parts, policyNameSeparator) + policyIndexSeparator + strconv.Itoa(i)
}

func dedupe(xs []api.PolicyRef) []api.PolicyRef {
	seen := map[api.PolicyRef]bool{}
	var out []api.PolicyRef
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

type predicate = xmatcher.Matcher_MatcherList_Predicate

func rbacOnMatch(name string, action rbacconf.RBAC_Action) *xmatcher.Matcher_OnMatch {
	return &xmatcher.Matcher_OnMatch{OnMatch: &xmatcher.Matcher_OnMatch_Action{Action: &xcore.TypedExtensionConfig{
		Name: "envoy.filters.rbac.action", TypedConfig: typed(&rbacconf.Action{Name: name, Action: action})}}}
}

func rbacAction(p *predicate, name string, action rbacconf.RBAC_Action) *xmatcher.Matcher_MatcherList_FieldMatcher {
	return &xmatcher.Matcher_MatcherList_FieldMatcher{Predicate: p, OnMatch: rbacOnMatch(name, action)}
}

// and, or and not combine predicates; and/or of one is it, and of none is
// true, or of none false.
func and(ps ...*predicate) *predicate {
	switch len(ps) {
	case 0:
		return always()
	case 1:
		return ps[0]
	}
	return &predicate{MatchType: &xmatcher.Matcher_MatcherList_Predicate_AndMatcher{
		AndMatcher: &xmatcher.Matcher_MatcherList_Predicate_PredicateList{Predicate: ps}}}
}

func or(ps ...*predicate) *predicate {
	switch len(ps) {
	case 0:
		return not(always())
	case 1:
		return ps[0]
	}
	return &predicate{MatchType: &xmatcher.Matcher_MatcherList_Predicate_OrMatcher{
		OrMatcher: &xmatcher.Matcher_MatcherList_Predicate_PredicateList{Predicate: ps}}}
}

func not(p *predicate) *predicate {
	return &predicate{MatchType: &xmatcher.Matcher_MatcherList_Predicate_NotMatcher{NotMatcher: p}}
}

// always is true: the client's address is an address.
func always() *predicate {
	p, _ := ipPredicate([]netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}, false)
	return p
}

// ipPredicate matches the client's address (egress: the original
// destination) against prefixes.
func ipPredicate(ps []netip.Prefix, egress bool) (*predicate, error) {
	input := &xcore.TypedExtensionConfig{Name: "envoy.matching.inputs.direct_source_ip", TypedConfig: typed(&netinputs.DirectSourceIPInput{})}
	if egress {
		input = &xcore.TypedExtensionConfig{Name: "envoy.matching.inputs.destination_ip", TypedConfig: typed(&netinputs.DestinationIPInput{})}
	}
	ip := &ipmatcher.Ip{StatPrefix: "periscope_l7_peers"}
	for _, p := range ps {
		if !p.IsValid() {
			return nil, fmt.Errorf("bad prefix %v", p)
		}
		p = p.Masked()
		ip.CidrRanges = append(ip.CidrRanges, &core.CidrRange{AddressPrefix: p.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits()))})
	}
	if len(ps) == 0 {
		return not(always()), nil
	}
	return &predicate{MatchType: &xmatcher.Matcher_MatcherList_Predicate_SinglePredicate_{
		SinglePredicate: &xmatcher.Matcher_MatcherList_Predicate_SinglePredicate{
			Input: input,
			Matcher: &xmatcher.Matcher_MatcherList_Predicate_SinglePredicate_CustomMatch{CustomMatch: &xcore.TypedExtensionConfig{
				Name: "envoy.matching.matchers.ip", TypedConfig: typed(ip)}},
		}}}, nil
}

// peersPredicate matches the addresses of p.
func peersPredicate(p Peers, egress bool) (*predicate, error) {
	var terms []*predicate
	var plain []netip.Prefix
	for _, r := range p.Ranges {
		if len(r.Except) == 0 {
			plain = append(plain, r.Prefix)
			continue
		}
		in, err := ipPredicate([]netip.Prefix{r.Prefix}, egress)
		if err != nil {
			return nil, err
		}
		ex, err := ipPredicate(r.Except, egress)
		if err != nil {
			return nil, err
		}
		terms = append(terms, and(in, not(ex)))
	}
	if len(plain) > 0 {
		in, err := ipPredicate(plain, egress)
		if err != nil {
			return nil, err
		}
		terms = append(terms, in)
	}
	if p.Rest {
		ex, err := ipPredicate(p.RestExcept, egress)
		if err != nil {
			return nil, err
		}
		terms = append(terms, not(ex))
	}
	return or(terms...), nil
}

// httpPredicate is the requests an HTTP rule allows.
func httpPredicate(h HTTPRule) (*predicate, error) {
	var ps []*predicate
	for _, f := range []struct{ header, re string }{{":method", h.Method}, {":path", h.Path}, {":authority", h.Host}} {
		if f.re == "" {
			continue
		}
		if _, err := regexp.Compile(f.re); err != nil {
			return nil, fmt.Errorf("%s regexp %q: %w", f.header, f.re, err)
		}
		ps = append(ps, headerRegex(f.header, f.re))
	}
	for _, hd := range h.Headers {
		if hd.Value == "" {
			ps = append(ps, headerRegex(hd.Name, `(?s).*`)) // present
			continue
		}
		ps = append(ps, header(hd.Name, &xmatcher.StringMatcher{MatchPattern: &xmatcher.StringMatcher_Exact{Exact: hd.Value}}))
	}
	return and(ps...), nil
}

// headerRegex matches a request header's whole value (a repeated header's
// values joined by ",") against re.
func headerRegex(name, re string) *predicate {
	return header(name, &xmatcher.StringMatcher{MatchPattern: &xmatcher.StringMatcher_SafeRegex{SafeRegex: &xmatcher.RegexMatcher{
		EngineType: &xmatcher.RegexMatcher_GoogleRe2{GoogleRe2: &xmatcher.RegexMatcher_GoogleRE2{}}, Regex: re}}})
}

func header(name string, m *xmatcher.StringMatcher) *predicate {
	return &predicate{MatchType: &xmatcher.Matcher_MatcherList_Predicate_SinglePredicate_{
		SinglePredicate: &xmatcher.Matcher_MatcherList_Predicate_SinglePredicate{
			Input: &xcore.TypedExtensionConfig{Name: "envoy.matching.inputs.request_headers",
				TypedConfig: typed(&matcher.HttpRequestHeaderMatchInput{HeaderName: strings.ToLower(name)})},
			Matcher: &xmatcher.Matcher_MatcherList_Predicate_SinglePredicate_ValueMatch{ValueMatch: m},
		}}}
}

// deniedReply makes Envoy's refusals read as Cilium's: 403 "Access denied".
func deniedReply() *hcm.LocalReplyConfig {
	return &hcm.LocalReplyConfig{Mappers: []*hcm.ResponseMapper{{
		Filter: &accesslog.AccessLogFilter{FilterSpecifier: &accesslog.AccessLogFilter_StatusCodeFilter{
			StatusCodeFilter: &accesslog.StatusCodeFilter{Comparison: &accesslog.ComparisonFilter{
				Op:    accesslog.ComparisonFilter_EQ,
				Value: &core.RuntimeUInt32{DefaultValue: 403, RuntimeKey: "periscope.l7.denied_status"},
			}}}},
		Body: &core.DataSource{Specifier: &core.DataSource_InlineString{InlineString: deniedBody}},
	}}}
}
