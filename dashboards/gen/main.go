// Command gen writes Periscope's Grafana dashboards into dashboards/grafana/
// dashboards, for go generate (run from the dashboards package).
package main

import (
	"fmt"
	"os"

	"github.com/periscope-dev/periscope/dashboards"
)

func main() {
	if err := dashboards.Write(dashboards.Dir); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
