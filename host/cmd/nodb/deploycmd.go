package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/nodb-dev/nodb/abi/wire"
)

// apiError turns a non-2xx response into an error.
func apiError(resp *http.Response) error {
	body, _ := io.ReadAll(resp.Body)
	var e wire.Error
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		return &e
	}
	return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
}

// progressPrinter shows streamed progress: a bar on a terminal, plain lines
// otherwise, nothing with --quiet.
type progressPrinter struct {
	quiet bool
	tty   bool
	label string
	bar   *progressbar.ProgressBar
	last  time.Time
}

func newProgress(label string, quiet bool) *progressPrinter {
	return &progressPrinter{quiet: quiet, label: label, tty: isatty.IsTerminal(os.Stderr.Fd())}
}

func (p *progressPrinter) update(seq, head uint64, eps, eta float64) {
	if p.quiet {
		return
	}
	if p.tty {
		if p.bar == nil {
			p.bar = progressbar.NewOptions64(int64(head), progressbar.OptionSetWriter(os.Stderr),
				progressbar.OptionSetDescription(p.label), progressbar.OptionShowCount(), progressbar.OptionShowIts(),
				progressbar.OptionSetItsString("events"), progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(100*time.Millisecond))
		}
		if int64(head) > p.bar.GetMax64() {
			p.bar.ChangeMax64(int64(head))
		}
		p.bar.Set64(int64(seq))
		return
	}
	if time.Since(p.last) < time.Second && seq < head {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(os.Stderr, "%s: %d/%d events, %.0f events/s, ETA %.1fs\n", p.label, seq, head, eps, eta)
}

func (p *progressPrinter) done() {
	if p.bar != nil {
		p.bar.Finish()
		fmt.Fprintln(os.Stderr)
	}
}

// longOperation sends a request whose answer is an NDJSON progress stream
// (activate, rollback, dry-run), shows the progress as label, prints the
// final report and returns it.
func longOperation(ctx context.Context, cf *clientOptions, method, u string, body io.Reader, hdr map[string]string, label string, quiet bool) (json.RawMessage, error) {
	resp, err := cf.do(ctx, method, u, body, hdr)
	if err != nil {
		return nil, err
	}
	raw, err := streamReport(resp, newProgress(label, quiet))
	if err != nil {
		return nil, err
	}
	printJSON(raw)
	return raw, nil
}

// streamReport reads an NDJSON stream of progress lines and a final report
// or error; it returns the report's raw JSON.
func streamReport(resp *http.Response, p *progressPrinter) (json.RawMessage, error) {
	defer resp.Body.Close()
	defer p.done()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var line struct {
			Type       string          `json:"type"`
			Seq        uint64          `json:"seq"`
			Head       uint64          `json:"head"`
			EventsPerS float64         `json:"events_per_s"`
			ETAS       float64         `json:"eta_s"`
			Report     json.RawMessage `json:"report"`
			Code       string          `json:"code"`
			Error      string          `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, fmt.Errorf("bad line from the host: %q", sc.Text())
		}
		switch line.Type {
		case "progress":
			p.update(line.Seq, line.Head, line.EventsPerS, line.ETAS)
		case "report":
			return line.Report, nil
		case "error":
			return nil, &wire.Error{Code: line.Code, Message: line.Error}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("the host ended the stream without a report")
}

func printJSON(raw json.RawMessage) {
	var b bytes.Buffer
	if json.Indent(&b, raw, "", "  ") != nil {
		b.Write(raw)
	}
	fmt.Println(b.String())
}

// outcomeErr returns a non-nil error (exit status 3) when a report says the
// swap did not happen.
func outcomeErr(raw json.RawMessage) error {
	var r struct {
		Outcome string `json:"outcome"`
		Error   string `json:"error"`
	}
	json.Unmarshal(raw, &r)
	switch r.Outcome {
	case "refused", "failed":
		return &exitError{code: 3, err: fmt.Errorf("%s: %s", r.Outcome, r.Error)}
	}
	return nil
}

func deployCmd() *cobra.Command {
	var cf clientOptions
	var name, manifest, policy string
	var quiet, noActivate bool
	cmd := &cobra.Command{
		Use:   "deploy --name VIEW FILE.wasm",
		Short: "Upload a reducer version and activate it in a view (shadow replay, compare, swap)",
		Long: `Upload FILE.wasm to the host's plugin store (validated first), then
activate it in view --name: the host replays the whole history with the new
version in the background, compares the result with the live view and swaps
per --policy (always, if-identical, manual; default: the manifest's, else
if-identical). Prints the report as JSON; exit status 3 if the swap was
refused or failed (the live view is then untouched).

A cascade (a plugin that declares inputs with nodb.OnPatch) is deployed the
same way under its own view name; it is rebuilt from its inputs' states. A
token with deploy:cascade may deploy cascades over the views it may read.`,
		Example: `  nodb deploy --name todos todos.wasm
  nodb deploy --name todos --policy always --manifest todos.json todos.wasm
  nodb deploy --name todo-stats --token $STATS_BOT_TOKEN todo-stats.wasm`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			base, err := cf.base()
			if err != nil {
				return err
			}
			wasm, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			man := map[string]any{}
			if manifest != "" {
				data, err := os.ReadFile(manifest)
				if err != nil {
					return err
				}
				if err := json.Unmarshal(data, &man); err != nil {
					return fmt.Errorf("--manifest %s: %w", manifest, err)
				}
			}
			if _, ok := man["name"]; !ok {
				man["name"] = name
			}
			mj, _ := json.Marshal(man)
			ctx := cmd.Context()
			resp, err := cf.do(ctx, "POST", base+"/v1/plugins", bytes.NewReader(wasm), map[string]string{"Content-Type": "application/wasm", "X-Nodb-Manifest": string(mj)})
			if err != nil {
				return err
			}
			var up struct {
				Manifest struct {
					SHA256  string `json:"sha256"`
					Version string `json:"version"`
				} `json:"manifest"`
				Stored bool `json:"stored"`
			}
			json.NewDecoder(resp.Body).Decode(&up)
			resp.Body.Close()
			if !quiet {
				fmt.Fprintf(os.Stderr, "uploaded %s (version %s, new: %v)\n", up.Manifest.SHA256, up.Manifest.Version, up.Stored)
			}
			if noActivate {
				return nil
			}
			body, _ := json.Marshal(map[string]string{"sha256": up.Manifest.SHA256, "policy": policy})
			raw, err := longOperation(ctx, &cf, "POST", base+"/v1/views/"+url.PathEscape(name)+"/activate", bytes.NewReader(body),
				map[string]string{"Content-Type": "application/json"}, "replaying "+name, quiet)
			if err != nil {
				return err
			}
			var r struct {
				Outcome string `json:"outcome"`
			}
			if json.Unmarshal(raw, &r); r.Outcome == "awaiting-confirm" && !quiet {
				fmt.Fprintf(os.Stderr, "the swap awaits confirmation: nodb confirm --view %s\n", name)
			}
			return outcomeErr(raw)
		},
	}
	cf.addFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "view to activate the version in (required)")
	f.StringVar(&manifest, "manifest", "", "manifest JSON file (name, version, limits, swap_policy, sha256; upstreams for a cascade)")
	f.StringVar(&policy, "policy", "", "swap policy: always, if-identical or manual (default: the manifest's)")
	f.BoolVar(&quiet, "quiet", false, "no progress output")
	f.BoolVar(&noActivate, "upload-only", false, "store the version without activating it")
	cmd.MarkFlagRequired("name")
	return cmd
}

func pluginsCmd() *cobra.Command {
	var cf clientOptions
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "plugins",
		Short: "List the plugin versions in the host's store and the active one per view",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			base, err := cf.base()
			if err != nil {
				return err
			}
			resp, err := cf.do(cmd.Context(), "GET", base+"/v1/plugins", nil, nil)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if asJSON {
				printJSON(raw)
				return nil
			}
			var out struct {
				Plugins []struct {
					Name, Version, SHA256, SwapPolicy string
					Size                              int
					UploadedAt                        time.Time `json:"uploaded_at"`
				}
				Active []struct {
					View, SHA256 string
					History      []string
				}
			}
			if err := json.Unmarshal(raw, &out); err != nil {
				return err
			}
			active := map[string]string{}
			for _, a := range out.Active {
				active[a.SHA256] += a.View + " "
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SHA256\tNAME\tVERSION\tSIZE\tUPLOADED\tACTIVE IN")
			for _, p := range out.Plugins {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", p.SHA256[:16], p.Name, p.Version, p.Size, p.UploadedAt.Format(time.RFC3339), active[p.SHA256])
			}
			return tw.Flush()
		},
	}
	cf.addFlags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON")
	return cmd
}

func replayCmd() *cobra.Command {
	var cf clientOptions
	var viewName string
	var dryRun, quiet bool
	cmd := &cobra.Command{
		Use:   "replay --view VIEW --dry-run FILE.wasm",
		Short: "Compatibility report: replay a candidate version against the whole history, without swapping",
		Long: `Replay FILE.wasm side by side with the view's active version over the
whole log and report "identical": true, or the first seq after which the
states differ with the differing paths and their old and new values. Nothing
is stored or swapped. Exit status 3 when the states differ.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !dryRun {
				return fmt.Errorf("only --dry-run is supported; deploy a version with nodb deploy")
			}
			base, err := cf.base()
			if err != nil {
				return err
			}
			wasm, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			raw, err := longOperation(cmd.Context(), &cf, "POST", base+"/v1/views/"+url.PathEscape(viewName)+"/dry-run", bytes.NewReader(wasm),
				map[string]string{"Content-Type": "application/wasm"}, "comparing "+viewName, quiet)
			if err != nil {
				return err
			}
			var r struct {
				Identical bool   `json:"identical"`
				FirstDiff uint64 `json:"first_diff"`
				Error     string `json:"error"`
			}
			json.Unmarshal(raw, &r)
			if !r.Identical {
				if r.Error != "" {
					return &exitError{code: 3, err: fmt.Errorf("%s", r.Error)}
				}
				return &exitError{code: 3, err: fmt.Errorf("the states differ from seq %d", r.FirstDiff)}
			}
			return nil
		},
	}
	cf.addFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&viewName, "view", "", "view whose active version to compare with (required)")
	f.BoolVar(&dryRun, "dry-run", false, "compare only (required)")
	f.BoolVar(&quiet, "quiet", false, "no progress output")
	cmd.MarkFlagRequired("view")
	return cmd
}

func rollbackCmd() *cobra.Command {
	var cf clientOptions
	var viewName string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "rollback --view VIEW",
		Short: "Swap a view back to the version active before the current one",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			base, err := cf.base()
			if err != nil {
				return err
			}
			raw, err := longOperation(cmd.Context(), &cf, "POST", base+"/v1/views/"+url.PathEscape(viewName)+"/rollback", nil, nil, "replaying "+viewName, quiet)
			if err != nil {
				return err
			}
			return outcomeErr(raw)
		},
	}
	cf.addFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&viewName, "view", "", "view to roll back (required)")
	f.BoolVar(&quiet, "quiet", false, "no progress output")
	cmd.MarkFlagRequired("view")
	return cmd
}

func confirmCmd() *cobra.Command {
	var cf clientOptions
	var viewName string
	cmd := &cobra.Command{
		Use:   "confirm --view VIEW",
		Short: "Perform the swap of a view that awaits confirmation (nodb deploy --policy manual)",
		Long: `A deploy with --policy manual replays and compares the new version, then
waits (outcome "awaiting-confirm") with the live view unchanged. nodb confirm
performs that swap and prints the report as JSON; exit status 3 if the swap
failed (the live view is then untouched). To drop a waiting swap instead,
deploy another version (or the active one) to the view.`,
		Example: `  nodb deploy --name todos --policy manual v2.wasm
  nodb confirm --view todos`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			base, err := cf.base()
			if err != nil {
				return err
			}
			resp, err := cf.do(cmd.Context(), "POST", base+"/v1/views/"+url.PathEscape(viewName)+"/confirm", nil, nil)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			raw, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			printJSON(raw)
			return outcomeErr(raw)
		},
	}
	cf.addFlags(cmd)
	cmd.Flags().StringVar(&viewName, "view", "", "view whose waiting swap to perform (required)")
	cmd.MarkFlagRequired("view")
	return cmd
}
