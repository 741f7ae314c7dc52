package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector"
)

// observeOptions are the observe subcommand's non-filter flags.
type observeOptions struct {
	server    string // "": the API socket when usable, else defaultServer
	socket    string
	token     string
	tokenFile string
	output    string
	window    window
}

// target is how the options reach the API.
func (o observeOptions) target() apiTarget {
	return apiTarget{server: o.server, socket: o.socket, token: o.token, tokenFile: o.tokenFile}
}

func newObserveCmd() *cobra.Command {
	return newObserveCmdWith(func(cmd *cobra.Command, opts observeOptions, chips []string) error {
		return runObserve(cmd.Context(), opts, chips, cmd.OutOrStdout(), http.DefaultClient)
	})
}

// newObserveCmdWith builds the observe command around run, which tests replace
// to see what the flags turned into.
func newObserveCmdWith(run func(cmd *cobra.Command, opts observeOptions, chips []string) error) *cobra.Command {
	var (
		opts  observeOptions
		chips chipList
	)
	cmd := &cobra.Command{
		Use:   "observe",
		Short: "Show flows from a collector, like hubble observe",
		Long: `Show flows from a Periscope collector, with hubble observe's flags.

A repeated filter flag ORs its values (--port 80 --port 443); different filter
flags AND (--port 80 --verdict DROPPED). --not negates the next filter flag
(--not --namespace kube-system). --filter takes a chip as the UI writes it:
[!][from:|to:]kind=value.

Without --last, --first, --all, --since or --until it shows the last 20 flows;
--follow alone streams new flows until interrupted.`,
		Example: `  periscope observe --last 100 --verdict DROPPED
  periscope observe -f --to-pod default/backend --not --from-label app=frontend
  periscope observe --since 5m --protocol tcp --tcp-flags SYN -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if chips.negateNext {
				return fmt.Errorf("--not must be followed by a filter flag")
			}
			return run(cmd, opts, chips.chips)
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringVar(&opts.server, "server", "", "Collector address: host:port or an http(s):// URL (default: the API socket when usable, else "+defaultServer+")")
	fs.StringVar(&opts.socket, "socket", collector.DefaultSocket, "The API's local Unix socket, used when --server is not given and this user may connect to it")
	fs.StringVar(&opts.token, "token", "", "API token (the collector's --api-token); $"+envAPIToken+" when not given")
	fs.StringVar(&opts.tokenFile, "token-file", "", "File holding the API token")
	fs.StringVarP(&opts.output, "output", "o", "compact", "Output format: compact, json, jsonpb (same as json) or table")
	fs.BoolVarP(&opts.window.follow, "follow", "f", false, "Keep showing new flows until interrupted")
	fs.IntVar(&opts.window.last, "last", 0, "Show the last N flows (default 20 unless --first, --all, --since, --until or --follow)")
	fs.IntVar(&opts.window.first, "first", 0, "Show the first N flows")
	fs.BoolVar(&opts.window.all, "all", false, "Show all stored flows")
	fs.StringVar(&opts.window.since, "since", "", "Show flows since this time: a duration before now (5m, 1h) or an RFC 3339 time")
	fs.StringVar(&opts.window.until, "until", "", "Show flows until this time: a duration before now (5m, 1h) or an RFC 3339 time")
	fs.StringVar(&opts.window.source, "source", "ring", "Where flows come from: ring (the collector's memory) or clickhouse (history, with --clickhouse on the collector)")
	addFilterFlags(fs, &chips)
	return cmd
}

// runObserve asks the collector for flows and prints them to out.
func runObserve(ctx context.Context, opts observeOptions, chips []string, out io.Writer, hc *http.Client) error {
	q, err := opts.window.query(chips, time.Now())
	if err != nil {
		return err
	}
	p, err := newPrinter(opts.output, out, time.Local, opts.window.follow)
	if err != nil {
		return err
	}
	c, err := opts.target().client(hc)
	if err != nil {
		return err
	}
	err = c.flows(ctx, q, func(line []byte, f *api.Flow) error {
		if err := p.Print(line, f); err != nil {
			return fmt.Errorf("print flow: %w", err)
		}
		return nil
	})
	if ferr := p.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("print flows: %w", ferr)
	}
	return err
}
