package api

import (
	"encoding/hex"
	"fmt"
)

// A flow's UUID (Flow.UUID) in its text form: the canonical lower-case
// 8-4-4-4-12 hex form, read with its dashes optional. The JSON wire form,
// the filters and the Hubble API all use these, so the form is one.

// FormatUUID returns u in the canonical lower-case 8-4-4-4-12 hex form.
func FormatUUID(u *[16]byte) string {
	var b [36]byte
	return string(AppendUUID(b[:0], u))
}

// AppendUUID appends u in the canonical lower-case 8-4-4-4-12 hex form.
func AppendUUID(dst []byte, u *[16]byte) []byte {
	for i, b := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexDigits[b>>4], hexDigits[b&0xf])
	}
	return dst
}

// ParseUUID reads s, 32 hex digits with any dashes between them (the
// 8-4-4-4-12 form, or none), into dst. On error dst is left as it was.
func ParseUUID(s string, dst *[16]byte) error {
	var digits [32]byte
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '-' {
			continue
		}
		if n == len(digits) {
			return fmt.Errorf("uuid %q: too long", s)
		}
		digits[n] = s[i]
		n++
	}
	if n != len(digits) {
		return fmt.Errorf("uuid %q: want 32 hex digits", s)
	}
	var u [16]byte
	if _, err := hex.Decode(u[:], digits[:]); err != nil {
		return fmt.Errorf("uuid %q: %w", s, err)
	}
	*dst = u
	return nil
}
