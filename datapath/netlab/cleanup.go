package netlab

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/periscope-dev/periscope/discovery/nldump"
	"github.com/vishvananda/netlink"
)

// Cleanup removes the links and network namespaces whose names start with
// prefix (NamePrefix removes every lab's), the leftovers of a crashed run.
// It spares labs that are still alive, in this process or another.
func Cleanup(prefix string) error {
	if prefix == "" {
		return errors.New("cleanup: empty prefix")
	}
	links, nss, err := list(prefix)
	if err != nil {
		return fmt.Errorf("cleanup %q: %w", prefix, err)
	}
	alive := map[int]bool{}
	isAlive := func(name string) bool {
		index, ok := slotOf(name)
		if !ok {
			return false
		}
		if held, seen := alive[index]; seen {
			return held
		}
		f, held, err := tryLock(index)
		if err == nil && f != nil {
			f.Close()
		}
		alive[index] = held || err != nil // when in doubt, spare it
		return alive[index]
	}
	var errs []error
	for _, name := range links {
		if !isAlive(name) {
			errs = append(errs, deleteLink(name))
		}
	}
	for _, name := range nss {
		if !isAlive(name) {
			errs = append(errs, deleteNetns(name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cleanup %q: %w", prefix, err)
	}
	return nil
}

// slotOf parses the lab slot out of a name "psc-<id>-...".
func slotOf(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, NamePrefix)
	if !ok || len(rest) < 4 || rest[3] != '-' {
		return 0, false
	}
	index, err := strconv.ParseUint(rest[:3], 16, 16)
	if err != nil || index >= maxLabs {
		return 0, false
	}
	return int(index), true
}

// removeByPrefix removes links and namespaces with the prefix, alive or not.
func removeByPrefix(prefix string) error {
	links, nss, err := list(prefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range links {
		errs = append(errs, deleteLink(name))
	}
	for _, name := range nss {
		errs = append(errs, deleteNetns(name))
	}
	return errors.Join(errs...)
}

// list returns the root namespace's links and the named network namespaces
// whose names start with prefix.
func list(prefix string) (links, nss []string, err error) {
	all, err := linkList()
	if err != nil {
		return nil, nil, err
	}
	for _, l := range all {
		if strings.HasPrefix(l.Attrs().Name, prefix) {
			links = append(links, l.Attrs().Name)
		}
	}
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("list %s: %w", netnsDir, err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			nss = append(nss, e.Name())
		}
	}
	return links, nss, nil
}

// deleteLink deletes a link of the root namespace; a missing one is fine
// (deleting a veth's one end removes the other).
func deleteLink(name string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return nil
		}
		return fmt.Errorf("find link %s: %w", name, err)
	}
	if err := netlink.LinkDel(link); err != nil {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

// linkList lists the root namespace's links, retrying a dump that links
// changing meanwhile (other labs, other tests) made inconsistent.
func linkList() ([]netlink.Link, error) {
	links, err := nldump.Retry(netlink.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	return links, nil
}
