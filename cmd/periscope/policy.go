package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/periscope-dev/periscope/api/policyapi"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// apiClient calls a collector's policy and identity API.
type apiClient struct{ *flowClient }

func newAPIClient(t apiTarget) (*apiClient, error) {
	fc, err := t.client(&http.Client{Timeout: 30 * time.Second})
	if err != nil {
		return nil, err
	}
	return &apiClient{fc}, nil
}

// do sends a request and returns the body of a 2xx answer. A body is
// sent as YAML (policies; JSON is YAML too).
func (c *apiClient) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/yaml")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.reachError(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read answer of %s: %w", c.via, err)
	}
	if resp.StatusCode/100 != 2 {
		var res policyapi.ApplyResult
		if json.Unmarshal(data, &res) == nil && len(res.Errors) > 0 {
			return nil, errors.New(strings.Join(res.Errors, "\n"))
		}
		return nil, fmt.Errorf("the collector at %s refused (%s): %s", c.via, resp.Status, strings.TrimSpace(string(data)))
	}
	return data, nil
}

func newPolicyCmd() *cobra.Command {
	var server apiTarget
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Validate, apply, list, get and delete network policies",
		Long: `Validate, apply, list, get and delete network policies.

Changes (apply, delete) go over the collector's local API socket (--socket,
its file permissions decide) unless --server is given, which then needs the
collector's API token (--token, --token-file or $` + envAPIToken + `).`,
	}
	server.addFlags(cmd.PersistentFlags(), "collector")

	var files []string
	validate := &cobra.Command{
		Use:   "validate -f FILE...",
		Short: "Check policy files offline; errors read file:line:column: what is wrong",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return errors.New("no file: use -f FILE")
			}
			errs, skipped := policy.Validate(files...)
			for _, sk := range skipped {
				fmt.Fprintln(cmd.ErrOrStderr(), sk)
			}
			for _, e := range errs {
				fmt.Fprintln(cmd.ErrOrStderr(), e)
			}
			if len(errs) > 0 {
				return fmt.Errorf("%d problem(s)", len(errs))
			}
			fmt.Fprintln(cmd.OutOrStdout(), "valid")
			return nil
		},
	}
	validate.Flags().StringArrayVarP(&files, "file", "f", nil, "policy file (repeatable)")

	var applyFiles []string
	apply := &cobra.Command{
		Use:   "apply -f FILE...",
		Short: "Apply the policies of files (all or nothing per file)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(applyFiles) == 0 {
				return errors.New("no file: use -f FILE")
			}
			if errs, _ := policy.Validate(applyFiles...); len(errs) > 0 {
				return errors.Join(errs...)
			}
			c, err := newAPIClient(server)
			if err != nil {
				return err
			}
			for _, f := range applyFiles {
				data, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				out, err := c.do(cmd.Context(), http.MethodPost, policyapi.PoliciesPath+"?"+policyapi.FileParam+"="+url.QueryEscape(f), data)
				if err != nil {
					return err
				}
				var res policyapi.ApplyResult
				if err := json.Unmarshal(out, &res); err != nil {
					return fmt.Errorf("parse answer: %w", err)
				}
				for _, sk := range res.Skipped {
					fmt.Fprintln(cmd.ErrOrStderr(), sk)
				}
				for _, p := range res.Applied {
					fmt.Fprintf(cmd.OutOrStdout(), "%s %s applied (revision %d)\n", p.Kind, ref(p.Namespace, p.Name), p.Revision)
				}
			}
			return nil
		},
	}
	apply.Flags().StringArrayVarP(&applyFiles, "file", "f", nil, "policy file (repeatable)")

	var ns string
	var delFiles []string
	del := &cobra.Command{
		Use:   "delete NAME [-n NAMESPACE] | -f FILE...",
		Short: "Delete policies by name or those defined in files",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			type target struct{ kind, ns, name string }
			var ts []target
			if len(args) == 1 {
				ts = append(ts, target{"", ns, args[0]})
			}
			for _, f := range delFiles {
				pols, err := policy.ParseFile(f)
				if err != nil {
					return err
				}
				for _, p := range pols {
					ts = append(ts, target{string(p.Kind), p.Namespace, p.Name})
				}
			}
			if len(ts) == 0 {
				return errors.New("name a policy or use -f FILE")
			}
			c, err := newAPIClient(server)
			if err != nil {
				return err
			}
			var errs []error
			for _, t := range ts {
				q := ""
				if t.kind != "" {
					q = "?" + policyapi.KindParam + "=" + url.QueryEscape(t.kind)
				}
				if _, err := c.do(cmd.Context(), http.MethodDelete, policyapi.PolicyPath(t.ns, t.name)+q, nil); err != nil {
					errs = append(errs, fmt.Errorf("delete %s: %w", ref(t.ns, t.name), err))
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s deleted\n", ref(t.ns, t.name))
			}
			return errors.Join(errs...)
		},
	}
	del.Flags().StringVarP(&ns, "namespace", "n", "default", "namespace (\"\" for clusterwide policies)")
	del.Flags().StringArrayVarP(&delFiles, "file", "f", nil, "delete the policies defined in this file (repeatable)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the applied policies",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newAPIClient(server)
			if err != nil {
				return err
			}
			out, err := c.do(cmd.Context(), http.MethodGet, policyapi.PoliciesPath, nil)
			if err != nil {
				return err
			}
			var ps []policyapi.Policy
			if err := json.Unmarshal(out, &ps); err != nil {
				return fmt.Errorf("parse answer: %w", err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KIND\tNAMESPACE\tNAME\tREVISION")
			for _, p := range ps {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", p.Kind, p.Namespace, p.Name, p.Revision)
			}
			return tw.Flush()
		},
	}

	var getNS string
	get := &cobra.Command{
		Use:   "get NAME [-n NAMESPACE]",
		Short: "Print a policy's YAML as applied",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newAPIClient(server)
			if err != nil {
				return err
			}
			out, err := c.do(cmd.Context(), http.MethodGet, policyapi.PolicyPath(getNS, args[0]), nil)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	get.Flags().StringVarP(&getNS, "namespace", "n", "default", "namespace (\"\" for clusterwide policies)")

	cmd.AddCommand(validate, apply, del, list, get)
	return cmd
}

func newIdentityCmd() *cobra.Command {
	var server apiTarget
	cmd := &cobra.Command{Use: "identity", Short: "Show security identities"}
	server.addFlags(cmd.PersistentFlags(), "collector")
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the identities of a running collector (reserved ones included)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newAPIClient(server)
			if err != nil {
				return err
			}
			out, err := c.do(cmd.Context(), http.MethodGet, policyapi.IdentitiesPath, nil)
			if err != nil {
				return err
			}
			var ids []policyapi.Identity
			if err := json.Unmarshal(out, &ids); err != nil {
				return fmt.Errorf("parse answer: %w", err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tLABELS")
			for _, i := range ids {
				fmt.Fprintf(tw, "%d\t%s\n", i.ID, strings.Join(i.Labels, ","))
			}
			return tw.Flush()
		},
	})
	return cmd
}

func ref(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}
