package dashboards

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Dir is where the generated dashboards are, relative to this package:
// what Grafana's dashboard provisioning reads.
const Dir = "grafana/dashboards"

// GrafanaDashboardsPath is where Grafana's dashboard provider reads Dir
// (grafana/provisioning/dashboards): mount Dir there.
const GrafanaDashboardsPath = "/var/lib/grafana/dashboards/periscope"

// builders are the dashboards by the name of their file in Dir.
var builders = map[string]func() *dashboard.DashboardBuilder{
	"golden-signals.json": goldenSignals,
	"flows.json":          flowsAndVerdicts,
	"policy.json":         policyDashboard,
	"node-health.json":    nodeHealth,
}

// Generate returns every dashboard's JSON, by file name.
func Generate() (map[string][]byte, error) {
	out := make(map[string][]byte, len(builders))
	for name, build := range builders {
		d, err := build().Build()
		if err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", name, err)
		}
		numberPanels(&d)
		b, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("dashboard %s: encode: %w", name, err)
		}
		out[name] = append(b, '\n')
	}
	return out, nil
}

// Write writes every dashboard into dir.
func Write(dir string) error {
	files, err := Generate()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write dashboards: %w", err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("write dashboards: %w", err)
		}
	}
	return nil
}

// numberPanels gives every panel and row a unique id, in order (Grafana
// links and edits panels by id).
func numberPanels(d *dashboard.Dashboard) {
	for i := range d.Panels {
		id := uint32(i + 1)
		switch p := d.Panels[i]; {
		case p.Panel != nil:
			p.Panel.Id = &id
		case p.RowPanel != nil:
			p.RowPanel.Id = id
		}
	}
}
