package main

import (
	"github.com/spf13/pflag"

	"github.com/periscope-dev/periscope/relay/hubble"
)

// pointViewFlag is --hubble-observation-points: what the Hubble API serves
// of a connection seen at two observation points of a node.
type pointViewFlag struct{ view hubble.PointView }

func (p *pointViewFlag) String() string { return p.view.String() }

func (p *pointViewFlag) Set(s string) error {
	v, err := hubble.ParsePointView(s)
	if err != nil {
		return err
	}
	p.view = v
	return nil
}

func (p *pointViewFlag) Type() string { return "view" }

// addPointViewFlag adds --hubble-observation-points to f.
func addPointViewFlag(f *pflag.FlagSet, p *pointViewFlag) {
	f.Var(p, "hubble-observation-points",
		"what the Hubble API serves of a connection seen at two interfaces of a node: connection (one flow) or each (a flow per point, as Cilium's Hubble; a filter naming an --interface or a --type trace:<point> always gets them)")
}
