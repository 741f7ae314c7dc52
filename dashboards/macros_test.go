package dashboards

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"
)

// macroRE finds a macro of the ClickHouse plugin: $__name or $__name(args).
var macroRE = regexp.MustCompile(`\$__(\w+)(?:\(([^)]*)\))?`)

// expandMacros expands the grafana-clickhouse-datasource macros in sql for
// the time range from..to at interval, as the plugin's backend does
// (pkg/macros, v4): time bounds as toDateTime(unix seconds), dates as
// toDate('YYYY-MM-DD'), intervals in whole seconds (at least 1). A macro it
// does not know, or a dashboard variable left in the SQL, is an error.
func expandMacros(sql string, from, to time.Time, interval time.Duration) (string, error) {
	seconds := int(math.Max(interval.Seconds(), 1))
	dateTime := func(t time.Time) string { return fmt.Sprintf("toDateTime(%d)", t.Unix()) }
	date := func(t time.Time) string { return fmt.Sprintf("toDate('%s')", t.UTC().Format("2006-01-02")) }
	var errs []string
	out := macroRE.ReplaceAllStringFunc(sql, func(m string) string {
		sm := macroRE.FindStringSubmatch(m)
		name, hasArgs := sm[1], strings.Contains(m, "(")
		var args []string
		if hasArgs {
			for a := range strings.SplitSeq(sm[2], ",") {
				args = append(args, strings.TrimSpace(a))
			}
		}
		one := func() string {
			if len(args) != 1 {
				errs = append(errs, fmt.Sprintf("%s: want 1 argument, have %d", m, len(args)))
				return m
			}
			return args[0]
		}
		switch name {
		case "fromTime":
			return dateTime(from)
		case "toTime":
			return dateTime(to)
		case "timeFilter":
			col := one()
			return fmt.Sprintf("%s >= %s AND %s <= %s", col, dateTime(from), col, dateTime(to))
		case "dateFilter":
			col := one()
			return fmt.Sprintf("%s >= %s AND %s <= %s", col, date(from), col, date(to))
		case "timeInterval":
			return fmt.Sprintf("toStartOfInterval(toDateTime(%s), INTERVAL %d second)", one(), seconds)
		case "interval_s":
			return fmt.Sprint(seconds)
		}
		errs = append(errs, "unknown macro "+m)
		return m
	})
	if len(errs) > 0 {
		return "", fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	if strings.Contains(out, "$") {
		return "", fmt.Errorf("a variable is left after expanding the macros: %s", out)
	}
	return out, nil
}

func TestMacrosExpandAsThePluginDoes(t *testing.T) {
	from, to := time.Unix(1415792726, 0), time.Unix(1447328726, 0)
	tests := []struct {
		in, want string
	}{
		{"WHERE $__timeFilter(time)", "WHERE time >= toDateTime(1415792726) AND time <= toDateTime(1447328726)"},
		{"WHERE $__dateFilter(day)", "WHERE day >= toDate('2014-11-12') AND day <= toDate('2015-11-12')"},
		{"$__fromTime AND $__toTime", "toDateTime(1415792726) AND toDateTime(1447328726)"},
		{"intDiv(x, $__interval_s)", "intDiv(x, 60)"},
		{"$__timeInterval(minute)", "toStartOfInterval(toDateTime(minute), INTERVAL 60 second)"},
		{"$__unknown(x)", ""},
		{"x = '$node'", ""},
	}
	for _, tt := range tests {
		got, err := expandMacros(tt.in, from, to, time.Minute)
		if tt.want == "" {
			if err == nil {
				t.Errorf("expandMacros(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("expandMacros(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if got, _ := expandMacros("$__interval_s", from, to, 0); got != "1" {
		t.Errorf("an interval under a second expands to %s, want 1", got)
	}
}
