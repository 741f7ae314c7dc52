package netlab

import (
	"context"
	"os/exec"
)

// Command returns a command that runs name with args inside the pod's
// network namespace (through `ip netns exec`). ctx kills it when done.
func (p *Pod) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", p.NetNSName, name}, args...)...)
}
