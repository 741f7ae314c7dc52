package filter

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/periscope-dev/periscope/api"
)

// The kinds that name one thing: uuid, interface.

func parseUUID(raw string) (value, error) {
	var u [16]byte
	if api.ParseUUID(raw, &u) != nil {
		return value{}, fmt.Errorf("uuid must be 32 hex digits, e.g. 4f1a9c2e-5b7d-4e3a-9c1f-2b6d8e0a7c5d")
	}
	return value{text: api.FormatUUID(&u), uuid: u}, nil
}

func matchUUID(v *value, fl *api.Flow, _ side) bool {
	return fl.UUID == v.uuid
}

// parseInterface reads "name", ":index" or "name:index" (Linux interface
// names have no colon): Hubble's NetworkInterface, whose unset parts match
// any interface.
func parseInterface(raw string) (value, error) {
	name, idx, hasIdx := strings.Cut(raw, ":")
	v := value{name: name}
	if hasIdx {
		n, err := strconv.ParseUint(idx, 10, 32)
		if err != nil || n == 0 {
			return value{}, fmt.Errorf("interface index must be a number 1-4294967295 (interface is name, :index or name:index)")
		}
		v.num = uint32(n)
	}
	if v.name == "" && v.num == 0 {
		return value{}, fmt.Errorf("interface must be a name, :index or name:index")
	}
	v.text = v.name
	if v.num != 0 {
		v.text += ":" + strconv.FormatUint(uint64(v.num), 10)
	}
	return v, nil
}

func matchInterface(v *value, fl *api.Flow, _ side) bool {
	return (v.num == 0 || v.num == fl.Interface.Index) && (v.name == "" || v.name == fl.Interface.Name)
}
