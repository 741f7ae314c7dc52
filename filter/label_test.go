package filter

import "testing"

func TestSplitLabelFindsSourceKeyAndValue(t *testing.T) {
	tests := []struct{ label, source, key, value string }{
		{"k8s:app=frontend", "k8s", "app", "frontend"},
		{"app=frontend", "", "app", "frontend"},
		{"reserved:world", "reserved", "world", ""},
		{"k8s:io.kubernetes.pod.namespace=default", "k8s", "io.kubernetes.pod.namespace", "default"},
		{"key=a:b", "", "key", "a:b"},
		{"bare", "", "bare", ""},
	}
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			s, k, v := splitLabel(tt.label)
			if s != tt.source || k != tt.key || v != tt.value {
				t.Errorf("splitLabel(%q) = %q, %q, %q; want %q, %q, %q", tt.label, s, k, v, tt.source, tt.key, tt.value)
			}
		})
	}
}
