package main

import "github.com/spf13/cobra"

// Placeholder until the observe subcommand lands.
func newObserveCmd() *cobra.Command {
	return &cobra.Command{Use: "observe", Short: "not implemented yet"}
}
