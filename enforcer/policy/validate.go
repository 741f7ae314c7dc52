package policy

import (
	"errors"
	"fmt"
	"os"
)

// Validate parses every file and returns every problem, one error per
// problem, formatted "file:line:column: what is wrong" (CLI-ready), and
// the documents skipped as other Kubernetes objects. A policy defined in
// two files is an error too.
func Validate(paths ...string) (problems []error, skipped []Skipped) {
	var out []error
	seen := map[string]string{}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			out = append(out, fmt.Errorf("read policy file: %w", err))
			continue
		}
		docs, sk, err := ParseDocuments(path, data)
		if err != nil {
			out = append(out, unjoin(err)...)
			continue
		}
		skipped = append(skipped, sk...)
		for _, d := range docs {
			p := d.Policy
			key := string(p.Kind) + "/" + p.Ref()
			if prev, dup := seen[key]; dup {
				out = append(out, fmt.Errorf("%s: %s %q already defined at %s", p.Source, p.Kind, p.Ref(), prev))
				continue
			}
			seen[key] = p.Source
		}
	}
	return out, skipped
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
