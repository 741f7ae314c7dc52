package clickhouse

import (
	"context"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/collector/sink/clickhouse/chtest"
)

func TestMigrationsRunTwiceAreANoOp(t *testing.T) {
	s1, srv := openStore(t, nil, "periscope")
	if s1.migrationsRun == 0 {
		t.Fatal("first Open applied no migration")
	}
	t.Logf("server %s: first Open applied %d migrations", s1.ServerVersion(), s1.migrationsRun)
	s2, _ := openStore(t, srv, "periscope")
	if s2.migrationsRun != 0 {
		t.Errorf("second Open applied %d migrations, want 0", s2.migrationsRun)
	}
	if got := srv.Query("SELECT count() FROM periscope.schema_migrations"); got != itoa(s1.migrationsRun) {
		t.Errorf("schema_migrations has %s rows, want %d", got, s1.migrationsRun)
	}
	if got := srv.Query("SELECT name FROM system.tables WHERE database = 'periscope' ORDER BY name FORMAT CSV"); got != "\"flows\"\n\"flows_1m\"\n\"flows_1m_mv\"\n\"schema_migrations\"" {
		t.Errorf("tables:\n%s", got)
	}
	// Every statement is idempotent on its own: rerun all of them.
	ctx := context.Background()
	for _, m := range migrations {
		if !s1.version.atLeast(m.minVersion.major, m.minVersion.minor) {
			continue
		}
		if m.stmts != nil {
			for _, q := range m.stmts(s1.db) {
				if err := s1.conn.Exec(ctx, q); err != nil {
					t.Errorf("migration %d rerun: %v", m.version, err)
				}
			}
		}
		if err := s1.addColumns(ctx, m.addColumns); err != nil {
			t.Errorf("migration %d rerun: %v", m.version, err)
		}
	}
}

// TestRowsOfAnOlderSchemaReadBack: a flows table written before policies
// had kinds and revisions (columns of migrations 1-4) gains them and the
// DNS names and the second observation point, and its rows read back with
// their policies' namespaces and names (and one observation point).
func TestRowsOfAnOlderSchemaReadBack(t *testing.T) {
	srv := chtest.Start(t)
	old := slices.Concat(flowColumnsV1, l7Columns)
	var cols []string
	for _, c := range old {
		cols = append(cols, c.name+" "+c.typ)
	}
	srv.Query("CREATE DATABASE periscope")
	srv.Query("CREATE TABLE periscope.flows (" + strings.Join(cols, ", ") + ") ENGINE = MergeTree PARTITION BY toYYYYMMDD(time) ORDER BY (src_namespace, src_pod, verdict, time)")
	srv.Query("CREATE TABLE periscope.schema_migrations (version UInt32, name String, applied DateTime) ENGINE = MergeTree ORDER BY version")
	srv.Query("INSERT INTO periscope.schema_migrations VALUES (1, 'flows table', now()), (2, 'per-minute rollup', now()), (3, 'insert deduplication window', now()), (4, 'L7 columns', now())")
	srv.Query("INSERT INTO periscope.flows (time, verdict, ingress_allowed_by, egress_denied_by) VALUES (now(), 1, ['shop/web', 'lockdown'], ['default/deny-db'])")
	s, _ := openStore(t, srv, "periscope")
	if s.migrationsRun != len(migrations)-4 {
		t.Fatalf("%d migrations run on the older table, want %d (policy kinds and revisions, DNS names, observation points)", s.migrationsRun, len(migrations)-4)
	}
	got, err := query(t, s, flowquery.Query{})
	if err != nil || len(got) != 1 {
		t.Fatalf("read back %d flows: %v", len(got), err)
	}
	f := got[0]
	if want := []api.PolicyRef{{Name: "web", Namespace: "shop"}, {Name: "lockdown"}}; !reflect.DeepEqual(f.IngressAllowedBy, want) {
		t.Errorf("ingress_allowed_by %+v, want %+v", f.IngressAllowedBy, want)
	}
	if want := []api.PolicyRef{{Name: "deny-db", Namespace: "default"}}; !reflect.DeepEqual(f.EgressDeniedBy, want) {
		t.Errorf("egress_denied_by %+v, want %+v", f.EgressDeniedBy, want)
	}
	if f.Paired() {
		t.Errorf("an older row reads back with a second observation point: %+v", f.Other)
	}
}

func TestDropExpiredDropsWholeOldDays(t *testing.T) {
	s, srv := openStore(t, nil, "periscope")
	now := time.Now().UTC()
	old := genFlows(1, 50, now.Add(-10*24*time.Hour))
	recent := genFlows(2, 70, now.Add(-time.Hour))
	if err := s.Write(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), recent); err != nil {
		t.Fatal(err)
	}
	n, err := s.DropExpired(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 { // one day of flows, one of flows_1m
		t.Errorf("dropped %d partitions, want 2", n)
	}
	if got := srv.Query("SELECT count() FROM periscope.flows"); got != "70" {
		t.Errorf("%s flows left, want 70", got)
	}
	if got := srv.Query("SELECT sum(records) FROM periscope.flows_1m"); got != "70" {
		t.Errorf("rollup counts %s records, want 70", got)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestColumnsNamesTheTablesColumns(t *testing.T) {
	_, srv := openStore(t, nil, "periscope")
	for _, table := range []string{TableFlows, TableFlows1m} {
		got := srv.Query("SELECT name FROM system.columns WHERE database = 'periscope' AND table = '" + table + "' FORMAT TSV")
		if want := strings.Join(Columns(table), "\n"); got != want {
			t.Errorf("columns of %s:\n%s\nColumns(%q):\n%s", table, got, table, want)
		}
	}
}
