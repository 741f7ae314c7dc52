package api

import "testing"

func TestUUIDRoundTrip(t *testing.T) {
	want := [16]byte{0x4f, 0x1a, 0x9c, 0x2e, 0x5b, 0x7d, 0x4e, 0x3a, 0x9c, 0x1f, 0x2b, 0x6d, 0x8e, 0x0a, 0x7c, 0x5d}
	const canonical = "4f1a9c2e-5b7d-4e3a-9c1f-2b6d8e0a7c5d"
	if got := FormatUUID(&want); got != canonical {
		t.Fatalf("FormatUUID = %q, want %q", got, canonical)
	}
	for _, tc := range []struct{ name, in string }{
		{"the canonical form is read", canonical},
		{"dashes are optional", "4f1a9c2e5b7d4e3a9c1f2b6d8e0a7c5d"},
		{"upper case is read", "4F1A9C2E-5B7D-4E3A-9C1F-2B6D8E0A7C5D"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got [16]byte
			if err := ParseUUID(tc.in, &got); err != nil || got != want {
				t.Fatalf("ParseUUID(%q) = %x, %v; want %x", tc.in, got, err, want)
			}
		})
	}
}

func TestParseUUIDRefuses(t *testing.T) {
	for _, tc := range []struct{ name, in, err string }{
		{"too few digits", "0123", `uuid "0123": want 32 hex digits`},
		{"too many digits", "4f1a9c2e5b7d4e3a9c1f2b6d8e0a7c5d00", `uuid "4f1a9c2e5b7d4e3a9c1f2b6d8e0a7c5d00": too long`},
		{"a digit that is not hex", "4f1a9c2e5b7d4e3a9c1f2b6d8e0a7c5g", `uuid "4f1a9c2e5b7d4e3a9c1f2b6d8e0a7c5g": encoding/hex: invalid byte: U+0067 'g'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := [16]byte{1}
			err := ParseUUID(tc.in, &dst)
			if err == nil || err.Error() != tc.err {
				t.Fatalf("ParseUUID(%q) error = %v, want %s", tc.in, err, tc.err)
			}
			if dst != ([16]byte{1}) {
				t.Fatalf("ParseUUID(%q) changed dst on error: %x", tc.in, dst)
			}
		})
	}
}
