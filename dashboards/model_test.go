package dashboards

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The parts of Grafana's dashboard model (schemaVersion 42) the tests read
// from the generated JSON.
type (
	dashboardJSON struct {
		UID           string      `json:"uid"`
		Title         string      `json:"title"`
		SchemaVersion int         `json:"schemaVersion"`
		Panels        []panelJSON `json:"panels"`
		Templating    struct {
			List []variableJSON `json:"list"`
		} `json:"templating"`
	}
	panelJSON struct {
		ID         int           `json:"id"`
		Type       string        `json:"type"`
		Title      string        `json:"title"`
		Datasource *refJSON      `json:"datasource"`
		Targets    []targetJSON  `json:"targets"`
		GridPos    gridPosJSON   `json:"gridPos"`
		Panels     []panelJSON   `json:"panels"` // a collapsed row's
		FieldCfg   *fieldCfgJSON `json:"fieldConfig"`
	}
	fieldCfgJSON struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	}
	refJSON struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	gridPosJSON struct{ X, Y, W, H int }
	targetJSON  struct {
		RefID      string   `json:"refId"`
		Datasource *refJSON `json:"datasource"`
		// Prometheus
		Expr    string `json:"expr"`
		Instant bool   `json:"instant"`
		Range   bool   `json:"range"`
		Format  any    `json:"format"`
		// ClickHouse
		RawSQL     string `json:"rawSql"`
		EditorType string `json:"editorType"`
		QueryType  string `json:"queryType"`
	}
	variableJSON struct {
		Type       string   `json:"type"`
		Name       string   `json:"name"`
		Query      string   `json:"query"`
		Regex      string   `json:"regex"`
		Datasource *refJSON `json:"datasource"`
		Multi      bool     `json:"multi"`
		IncludeAll bool     `json:"includeAll"`
		AllValue   string   `json:"allValue"`
	}
)

// loadDashboards reads the committed dashboards, by file name.
func loadDashboards(t testing.TB) map[string]dashboardJSON {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(Dir, "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no dashboards in %s (%v)", Dir, err)
	}
	out := map[string]dashboardJSON{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboardJSON
		dec := json.NewDecoder(strings.NewReader(string(b)))
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out[filepath.Base(p)] = d
	}
	return out
}

// query is one query of a dashboard: a panel's target or a variable's.
type query struct {
	where      string // dashboard / panel (refId) or dashboard / $variable
	datasource string // the datasource's type
	text       string // PromQL, label_values(...) or SQL
	instant    bool
	variable   *variableJSON // set for a variable's query
}

// queriesOf lists every query of d, panels' then variables'.
func queriesOf(name string, d dashboardJSON) []query {
	var qs []query
	for _, p := range panelsOf(d) {
		for _, tg := range p.Targets {
			q := query{where: name + " / " + p.Title + " (" + tg.RefID + ")", instant: tg.Instant}
			if tg.Datasource != nil {
				q.datasource = tg.Datasource.Type
			}
			q.text = tg.Expr
			if q.datasource == ClickHouseType {
				q.text = tg.RawSQL
			}
			qs = append(qs, q)
		}
	}
	for i := range d.Templating.List {
		v := &d.Templating.List[i]
		q := query{where: name + " / $" + v.Name, text: v.Query, variable: v}
		if v.Datasource != nil {
			q.datasource = v.Datasource.Type
		}
		qs = append(qs, q)
	}
	return qs
}

// panelsOf flattens rows: every panel but the rows themselves.
func panelsOf(d dashboardJSON) []panelJSON {
	var out []panelJSON
	for _, p := range d.Panels {
		if p.Type == "row" {
			out = append(out, p.Panels...)
			continue
		}
		out = append(out, p)
	}
	return out
}

// grafanaVariables are Grafana's own: not defined by a dashboard.
var grafanaVariables = []string{"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s"}

// variableRE finds $name and ${name} references (not the plugin's
// $__macros, which begin with two underscores and are handled apart).
var variableRE = regexp.MustCompile(`\$\{?(\w+)\}?`)

// variablesIn names the variables a query refers to.
func variablesIn(text string) []string {
	var names []string
	for _, m := range variableRE.FindAllStringSubmatch(text, -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	return names
}
