// Command periscope is Periscope's single binary: the node collector, the
// observe client, the demo and the tools around them, as subcommands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "periscope:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "periscope",
		Short:         "Flow visibility and policy for Linux nodes, from eBPF",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newCollectorCmd(),
		newObserveCmd(),
		newDemoCmd(),
		newRelayCmd(),
		newVersionCmd(),
		newPolicyCmd(),
		newIdentityCmd(),
		newEndpointCmd(),
	)
	return root
}
