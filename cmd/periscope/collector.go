package main

import "github.com/spf13/cobra"

// Placeholder until the collector subcommand lands.
func newCollectorCmd() *cobra.Command {
	return &cobra.Command{Use: "collector", Short: "not implemented yet"}
}
