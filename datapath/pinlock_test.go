package datapath

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// pinHolderEnv makes the test binary a pin holder: "<pin path> <interface>".
const pinHolderEnv = "PERISCOPE_TEST_PIN_HOLDER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(pinHolderEnv); spec != "" {
		os.Exit(holdPinPath(spec))
	}
	os.Exit(m.Run())
}

// holdPinPath is a second process's collector in miniature: it loads a
// Datapath on a pin path, attaches it to an interface, says "ready" and
// runs until its stdin closes.
func holdPinPath(spec string) int {
	pin, iface, _ := strings.Cut(spec, " ")
	d, err := Load(Config{PinPath: pin, Logger: quietLogger})
	if err != nil {
		fmt.Println("load:", err)
		return 1
	}
	defer d.Close()
	if err := d.AttachInterface(iface); err != nil {
		fmt.Println("attach:", err)
		return 1
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// TestASecondDatapathOnAPinPathIsRefused runs a Datapath in another process
// and loads a second one on its pin path: the second is refused naming the
// path and the holder, and the first's links, pins and attached programs
// are as they were. Once the holder dies (SIGKILL), the pin path is free.
func TestASecondDatapathOnAPinPathIsRefused(t *testing.T) {
	labtest.RequireRoot(t)
	pin := netlab.PinPath(t, "test-pinlock")
	l := newVethLab(t)

	holder := exec.Command(os.Args[0], "-test.run=^$")
	holder.Env = append(os.Environ(), pinHolderEnv+"="+pin+" "+l.host)
	stdin, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	holder.Stderr = os.Stderr
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		holder.Process.Kill()
		holder.Wait()
	})
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- strings.TrimSpace(line)
	}()
	select {
	case line := <-ready:
		if line != "ready" {
			t.Fatalf("the holder process: %q", line)
		}
	case <-time.After(time.Minute):
		t.Fatal("the holder process did not load within a minute")
	}

	pinsBefore, progsBefore := pinnedNames(t, pin), attachedPrograms(t, l.host)
	if len(progsBefore) != 2 || !slices.Contains(pinsBefore, filepath.Join(pinLinks, l.host+"-ingress")) {
		t.Fatalf("the holder attached %v and pinned %v", progsBefore, pinsBefore)
	}

	d, err := Load(Config{PinPath: pin, Logger: quietLogger})
	if err == nil {
		d.Close()
		t.Fatal("a second Load on a pin path in use succeeded")
	}
	want := fmt.Sprintf("(pid %d)", holder.Process.Pid)
	if !errors.Is(err, ErrPinPathInUse) || !strings.Contains(err.Error(), pin) || !strings.Contains(err.Error(), want) {
		t.Errorf("second Load: %v; want ErrPinPathInUse naming %s and %s", err, pin, want)
	}
	if pins := pinnedNames(t, pin); !slices.Equal(pins, pinsBefore) {
		t.Errorf("the refused Load changed the pins: %v, were %v", pins, pinsBefore)
	}
	if progs := attachedPrograms(t, l.host); !slices.Equal(progs, progsBefore) {
		t.Errorf("the refused Load changed the attached programs: %v, were %v", progs, progsBefore)
	}

	holder.Process.Kill()
	holder.Wait()
	d, err = Load(Config{PinPath: pin, Logger: quietLogger})
	if err != nil {
		t.Fatalf("Load after the holder died: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

// pinnedNames lists what is pinned under pin, relative to it, sorted.
func pinnedNames(t *testing.T, pin string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(pin, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			rel, _ := filepath.Rel(pin, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// attachedPrograms lists the ids of the TCX programs on iface, ingress
// then egress.
func attachedPrograms(t *testing.T, iface string) []ebpf.ProgramID {
	t.Helper()
	ifc, err := netlink.LinkByName(iface)
	if err != nil {
		t.Fatal(err)
	}
	var out []ebpf.ProgramID
	for _, a := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
		res, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Attrs().Index, Attach: a})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range res.Programs {
			out = append(out, p.ID)
		}
	}
	return out
}
