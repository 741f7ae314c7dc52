package flowquery

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/filter"
)

func TestParse(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		query   string
		want    Params
		wantErr string
	}{
		{name: "a request that bounds nothing gets the last 20", query: "",
			want: Params{Query: Query{Last: DefaultLast}, Source: SourceRing}},
		{name: "follow alone streams only new flows", query: "follow=1",
			want: Params{Follow: true, Source: SourceRing}},
		{name: "a bare follow is true", query: "follow",
			want: Params{Follow: true, Source: SourceRing}},
		{name: "since takes a duration before now", query: "since=1h",
			want: Params{Query: Query{Since: now.Add(-time.Hour)}, Source: SourceRing}},
		{name: "until takes an RFC 3339 time", query: "until=2026-11-23T11:00:00.5Z",
			want: Params{Query: Query{Until: time.Date(2026, 11, 23, 11, 0, 0, 5e8, time.UTC)}, Source: SourceRing}},
		{name: "filters are parsed into one set", query: "filter=verdict%3Ddropped&filter=port%3D53&first=3",
			want: Params{Query: Query{Filter: filter.MustParseSet("verdict=DROPPED", "port=53"), First: 3}, Source: SourceRing}},
		{name: "clickhouse history", query: "source=clickhouse&all=1",
			want: Params{Source: SourceClickHouse}},
		{name: "a bad filter names the parameter", query: "filter=color%3Dred", wantErr: `bad parameter "filter": filter "color=red": unknown kind "color"`},
		{name: "an unknown parameter is refused", query: "limit=5", wantErr: `bad parameter "limit": unknown parameter`},
		{name: "a repeated parameter is refused", query: "last=1&last=2", wantErr: `"last": given more than once`},
		{name: "last must be positive", query: "last=-1", wantErr: `"last": "-1" is not a positive integer`},
		{name: "last and first exclude each other", query: "last=1&first=1", wantErr: "exclude each other"},
		{name: "first cannot follow", query: "first=1&follow=1", wantErr: `"first": cannot be combined with follow`},
		{name: "history cannot follow", query: "source=clickhouse&follow=1", wantErr: "history is not live"},
		{name: "until before since is refused", query: "since=1m&until=1h", wantErr: "is before since"},
		{name: "a bad time names the parameter", query: "since=yesterday", wantErr: `"since": "yesterday" is neither`},
		{name: "a bad boolean names the parameter", query: "follow=maybe", wantErr: `"follow": "maybe" is not a boolean`},
		{name: "an unknown source is refused", query: "source=s3", wantErr: `"source": "s3" is not ring or clickhouse`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Parse(v, now)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Filter.String() != tt.want.Filter.String() || got.Last != tt.want.Last ||
				got.First != tt.want.First || !got.Since.Equal(tt.want.Since) ||
				!got.Until.Equal(tt.want.Until) || got.Follow != tt.want.Follow || got.Source != tt.want.Source {
				t.Fatalf("Parse(%q) = %+v, want %+v", tt.query, got, tt.want)
			}
		})
	}
}
