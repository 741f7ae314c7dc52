package metrics

import "testing"

func TestParseOptions(t *testing.T) {
	tests := []struct {
		in      string
		want    Options
		wantErr bool
	}{
		{in: "", want: Options{}},
		{in: "source_context=workload;destination_context=namespace",
			want: Options{SourceContext: []Context{ContextWorkload}, DestinationContext: []Context{ContextNamespace}}},
		{in: "sourceContext=pod-name|identity; destinationContext=workload-name; max_series=50; maxConnections=10",
			want: Options{SourceContext: []Context{ContextPodName, ContextIdentity}, DestinationContext: []Context{ContextWorkloadName}, MaxSeries: 50, MaxConnections: 10}},
		{in: "source_context=ip", wantErr: true},
		{in: "colour=blue", wantErr: true},
		{in: "max_series", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseOptions(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseOptions(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if !equalOptions(got, tt.want) {
				t.Errorf("ParseOptions(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func equalOptions(a, b Options) bool {
	eq := func(x, y []Context) bool {
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	return eq(a.SourceContext, b.SourceContext) && eq(a.DestinationContext, b.DestinationContext) &&
		a.MaxSeries == b.MaxSeries && a.MaxConnections == b.MaxConnections
}
