package datapath

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// tableRecorder is a RedirectSetter that keeps the last table.
type tableRecorder struct {
	last []Redirect
	fail error
}

func (r *tableRecorder) SetRedirects(rs []Redirect) error {
	if r.fail != nil {
		return r.fail
	}
	r.last = rs
	return nil
}

func TestRedirectOwnersSetTheUnionOfTheirParts(t *testing.T) {
	rec := &tableRecorder{}
	o := NewRedirectOwners(rec)
	envoy, dns := o.Owner("envoy"), o.Owner("dns")
	httpIn := Redirect{Endpoint: 7, Direction: RedirectIngress, Proto: 6, Port: 80, ProxyPort: 15100}
	dnsUDP := Redirect{Endpoint: 7, Direction: RedirectEgress, Proto: 17, Port: 53, ProxyPort: 15053}
	dnsTCP := Redirect{Endpoint: 7, Direction: RedirectEgress, Proto: 6, Port: 53, ProxyPort: 15053}

	if err := envoy.SetRedirects([]Redirect{httpIn}); err != nil {
		t.Fatal(err)
	}
	if err := dns.SetRedirects([]Redirect{dnsUDP, dnsTCP}); err != nil {
		t.Fatal(err)
	}
	if want := []Redirect{dnsUDP, dnsTCP, httpIn}; !reflect.DeepEqual(rec.last, want) {
		t.Fatalf("table %+v, want %+v", rec.last, want)
	}
	// An owner replacing its part leaves the other's.
	if err := envoy.SetRedirects(nil); err != nil {
		t.Fatal(err)
	}
	if want := []Redirect{dnsUDP, dnsTCP}; !reflect.DeepEqual(rec.last, want) {
		t.Fatalf("after envoy cleared its part: %+v, want %+v", rec.last, want)
	}
}

func TestRedirectOwnersRefuseASpotTwoOwnersClaim(t *testing.T) {
	rec := &tableRecorder{}
	o := NewRedirectOwners(rec)
	r := Redirect{Endpoint: 7, Direction: RedirectEgress, Proto: 6, Port: 53, ProxyPort: 15100}
	if err := o.Owner("envoy").SetRedirects([]Redirect{r}); err != nil {
		t.Fatal(err)
	}
	r.ProxyPort = 15053
	err := o.Owner("dns").SetRedirects([]Redirect{r})
	if err == nil || !strings.Contains(err.Error(), "by both dns and envoy") {
		t.Fatalf("err = %v, want a conflict naming both owners", err)
	}
	if len(rec.last) != 1 || rec.last[0].ProxyPort != 15100 {
		t.Fatalf("a refused part changed the table: %+v", rec.last)
	}
}

func TestRedirectOwnersKeepThePreviousPartWhenTheDatapathFails(t *testing.T) {
	rec := &tableRecorder{}
	o := NewRedirectOwners(rec)
	dns := o.Owner("dns")
	a := Redirect{Endpoint: 7, Direction: RedirectEgress, Proto: 17, Port: 53, ProxyPort: 15053}
	if err := dns.SetRedirects([]Redirect{a}); err != nil {
		t.Fatal(err)
	}
	rec.fail = errors.New("map full")
	if err := dns.SetRedirects(nil); err == nil || !strings.Contains(err.Error(), "dns redirects: map full") {
		t.Fatalf("err = %v", err)
	}
	rec.fail = nil
	b := Redirect{Endpoint: 8, Direction: RedirectIngress, Proto: 6, Port: 80, ProxyPort: 15100}
	if err := o.Owner("envoy").SetRedirects([]Redirect{b}); err != nil {
		t.Fatal(err)
	}
	if want := []Redirect{a, b}; !reflect.DeepEqual(rec.last, want) {
		t.Fatalf("table %+v, want the dns part kept: %+v", rec.last, want)
	}
}
