package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/periscope-dev/periscope/collector"
)

// newEndpointCmd lists a running collector's endpoints and removes them:
// removal is how an endpoint stops being enforced (one the endpoints file
// no longer declares is kept until then).
func newEndpointCmd() *cobra.Command {
	var server apiTarget
	cmd := &cobra.Command{
		Use:   "endpoint",
		Short: "List and remove a collector's endpoints",
		Long: `List and remove a collector's endpoints.

A removal goes over the collector's local API socket (--socket, its file
permissions decide) unless --server is given, which then needs the
collector's API token (--token, --token-file or $` + envAPIToken + `).`,
	}
	server.addFlags(cmd.PersistentFlags(), "collector")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the endpoints in force (KEPT: not in the endpoints file, enforced until removed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newAPIClient(server)
			if err != nil {
				return err
			}
			out, err := c.do(cmd.Context(), http.MethodGet, collector.EndpointsPath, nil)
			if err != nil {
				return err
			}
			var eps []collector.EndpointStatus
			if err := json.Unmarshal(out, &eps); err != nil {
				return fmt.Errorf("parse answer: %w", err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAMESPACE\tNAME\tIDENTITY\tINTERFACE\tIPS\tKEPT")
			for _, e := range eps {
				kept := ""
				if e.Kept != "" {
					kept = "kept"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", e.Namespace, e.Name, e.Identity, e.Interface, strings.Join(e.IPs, ","), kept)
			}
			return tw.Flush()
		},
	}

	remove := &cobra.Command{
		Use:   "remove NAMESPACE/NAME",
		Short: "Remove an endpoint: its policy and programs go, flows no longer name it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, name, ok := strings.Cut(args[0], "/")
			if !ok || ns == "" || name == "" {
				return fmt.Errorf("endpoint %q: want NAMESPACE/NAME", args[0])
			}
			c, err := newAPIClient(server)
			if err != nil {
				return err
			}
			if _, err := c.do(cmd.Context(), http.MethodDelete, collector.EndpointPath(ns, name), nil); err != nil {
				return fmt.Errorf("remove %s/%s: %w", ns, name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "endpoint %s/%s removed\n", ns, name)
			return nil
		},
	}
	cmd.AddCommand(list, remove)
	return cmd
}
