package netlab

import "os"

// InCI reports whether the tests run in CI, where a missing privilege or
// kernel feature is a failure and never a skip. The test helpers built on
// it live in package labtest, so that this package never links testing.
func InCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}
