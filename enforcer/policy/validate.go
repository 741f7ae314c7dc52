package policy

import (
	"errors"
	"fmt"
)

// Validate parses every file and returns every problem, one error per
// problem, formatted "file:line:column: what is wrong" (CLI-ready). A
// policy defined in two files is an error too.
func Validate(paths ...string) []error {
	var out []error
	seen := map[string]string{}
	for _, path := range paths {
		pols, err := ParseFile(path)
		if err != nil {
			out = append(out, unjoin(err)...)
			continue
		}
		for _, p := range pols {
			key := string(p.Kind) + "/" + p.Ref()
			if prev, dup := seen[key]; dup {
				out = append(out, fmt.Errorf("%s: %s %q already defined at %s", p.Source, p.Kind, p.Ref(), prev))
				continue
			}
			seen[key] = p.Source
		}
	}
	return out
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	var pe *Error
	if errors.As(err, &pe) {
		return []error{pe}
	}
	return []error{err}
}
