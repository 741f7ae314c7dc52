package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/periscope-dev/periscope/dashboards"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// service is what the test reads of a service in `docker-compose config`'s
// normalized output (volumes in short or long form, as v1 or v2 writes).
type service struct {
	Build       any               `yaml:"build"`
	Image       string            `yaml:"image"`
	User        string            `yaml:"user"`
	Privileged  bool              `yaml:"privileged"`
	CapAdd      []string          `yaml:"cap_add"`
	CapDrop     []string          `yaml:"cap_drop"`
	NetworkMode string            `yaml:"network_mode"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []yaml.Node       `yaml:"volumes"`
}

// mounts returns the service's volumes as target → source.
func (s service) mounts(t *testing.T) map[string]string {
	out := map[string]string{}
	for _, n := range s.Volumes {
		var short string
		if n.Decode(&short) == nil {
			parts := strings.Split(short, ":")
			if len(parts) >= 2 {
				out[parts[1]] = parts[0]
			}
			continue
		}
		var long struct{ Source, Target string }
		if err := n.Decode(&long); err != nil {
			t.Fatalf("a volume: %v", err)
		}
		out[long.Target] = long.Source
	}
	return out
}

// composeConfig runs `docker-compose config` (Debian's, or the docker
// compose plugin) on the stack and returns its services.
func composeConfig(t *testing.T) map[string]service {
	t.Helper()
	var cmd *exec.Cmd
	if bin, err := exec.LookPath("docker-compose"); err == nil {
		cmd = exec.Command(bin, "-f", "../docker-compose.yaml", "config")
	} else if exec.Command("docker", "compose", "version").Run() == nil {
		cmd = exec.Command("docker", "compose", "-f", "../docker-compose.yaml", "config")
	} else {
		labtest.SkipOrFail(t, "neither docker-compose nor the docker compose plugin is installed (apt-get install docker-compose)")
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, stderr.String())
	}
	var cfg struct {
		Services map[string]service `yaml:"services"`
	}
	if err := yaml.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("parse the config: %v\n%s", err, out)
	}
	return cfg.Services
}

func TestTheComposeStackIsValidAndConsistent(t *testing.T) {
	svcs := composeConfig(t)
	for _, name := range []string{"clickhouse", "collector", "relay", "prometheus", "grafana"} {
		if _, ok := svcs[name]; !ok {
			t.Errorf("the stack has no %s", name)
		}
	}
	col, relay, graf, prom := svcs["collector"], svcs["relay"], svcs["grafana"], svcs["prometheus"]

	t.Run("the collector is built here and has only the README's capabilities", func(t *testing.T) {
		if col.Build == nil || col.Image != relay.Image {
			t.Errorf("collector: build %v, image %q; the relay's image %q: want one image built from the Dockerfile", col.Build, col.Image, relay.Image)
		}
		readmeCaps := capabilitiesIn(t, "../README.md")
		if col.Privileged || !slices.Contains(col.CapDrop, "ALL") {
			t.Errorf("collector: privileged %v, cap_drop %v: want ALL dropped and only some added", col.Privileged, col.CapDrop)
		}
		for _, c := range col.CapAdd {
			if !slices.Contains(readmeCaps, "CAP_"+c) {
				t.Errorf("collector: capability %s is not among the README's %v", c, readmeCaps)
			}
		}
	})
	t.Run("the relay runs as the image's unprivileged user", func(t *testing.T) {
		if relay.User != "" || relay.Privileged || len(relay.CapAdd) > 0 {
			t.Errorf("relay: user %q, privileged %v, cap_add %v", relay.User, relay.Privileged, relay.CapAdd)
		}
		if !slices.Contains(relay.Command, "--peers=127.0.0.1:4244") {
			t.Errorf("relay: command %v does not join the collector", relay.Command)
		}
	})
	t.Run("Grafana gets the dashboards, their provisioning and its variables", func(t *testing.T) {
		mounts := graf.mounts(t)
		for target, source := range map[string]string{
			"/etc/grafana/provisioning":      "dashboards/grafana/provisioning",
			dashboards.GrafanaDashboardsPath: "dashboards/" + dashboards.Dir,
		} {
			if !strings.HasSuffix(mounts[target], source) {
				t.Errorf("grafana mounts %q at %s, want .../%s", mounts[target], target, source)
			}
		}
		if !strings.Contains(graf.Environment["GF_INSTALL_PLUGINS"], dashboards.ClickHouseType) {
			t.Errorf("grafana installs %q, not the ClickHouse plugin %s", graf.Environment["GF_INSTALL_PLUGINS"], dashboards.ClickHouseType)
		}
		b, err := os.ReadFile("../dashboards/grafana/provisioning/datasources/periscope.yaml")
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`\$\{(\w+)\}`).FindAllStringSubmatch(string(b), -1) {
			if _, ok := graf.Environment[m[1]]; !ok {
				t.Errorf("grafana's environment lacks %s, which the datasources read", m[1])
			}
		}
	})
	t.Run("Prometheus scrapes the collector's address", func(t *testing.T) {
		if !strings.HasSuffix(prom.mounts(t)["/etc/prometheus/prometheus.yml"], "deploy/prometheus.yml") {
			t.Errorf("prometheus does not mount deploy/prometheus.yml: %v", prom.mounts(t))
		}
		var cfg struct {
			ScrapeConfigs []struct {
				StaticConfigs []struct{ Targets []string } `yaml:"static_configs"`
			} `yaml:"scrape_configs"`
		}
		b, err := os.ReadFile("prometheus.yml")
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, &cfg); err != nil {
			t.Fatal(err)
		}
		listen := ""
		for _, arg := range col.Command {
			if v, ok := strings.CutPrefix(arg, "--listen="); ok {
				listen = v
			}
		}
		if len(cfg.ScrapeConfigs) == 0 || len(cfg.ScrapeConfigs[0].StaticConfigs) == 0 ||
			!slices.Contains(cfg.ScrapeConfigs[0].StaticConfigs[0].Targets, listen) ||
			!slices.Contains(col.Command, "--metrics") {
			t.Errorf("prometheus scrapes %+v; the collector listens on %q with %v", cfg.ScrapeConfigs, listen, col.Command)
		}
	})
}

// capabilitiesIn lists the CAP_ names a file mentions.
func capabilitiesIn(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return regexp.MustCompile(`CAP_[A-Z_]+`).FindAllString(string(b), -1)
}

func TestTheImageIsMultiStageAndUnprivileged(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var froms, users []string
	for line := range strings.SplitSeq(string(b), "\n") {
		switch f := strings.Fields(line); {
		case len(f) >= 2 && f[0] == "FROM":
			froms = append(froms, f[1])
			users = nil // a stage's USER lines
		case len(f) >= 2 && f[0] == "USER":
			users = append(users, f[1])
		}
	}
	if len(froms) < 2 {
		t.Errorf("the Dockerfile has %d stages, want a build stage and a runtime stage", len(froms))
	}
	if len(users) == 0 || users[len(users)-1] == "root" || users[len(users)-1] == "0" {
		t.Errorf("the image's last stage runs as %v, want an unprivileged user", users)
	}
}
