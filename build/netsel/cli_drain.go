package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/netsel/netsel/registrar/api"
	"github.com/netsel/netsel/registrar/client"
)

func cmdMaint(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		reason string
		off    bool
	)
	fs, _, c, err := clientCommand("maint", "maint NAME ID [-reason TEXT] [-off] [flags]\n\n"+
		"Takes an instance out of rotation (DNS, both proxies, the default listing) without\n"+
		"deregistering it; -off puts it back. It stays in maintenance across re-registrations\n"+
		"and ends when the instance is deregistered or expires",
		args, 2, 2, stderr, func(fs *flag.FlagSet) {
			fs.StringVar(&reason, "reason", "", "why, shown with the instance (at most 256 bytes)")
			fs.BoolVar(&off, "off", false, "end the maintenance: the instance takes traffic again")
		})
	if err != nil {
		return err
	}
	svc, id := fs.Arg(0), fs.Arg(1)
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if off {
		if err := c.EndMaintenance(ctx, svc, id); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s/%s: maintenance off\n", svc, id)
		return nil
	}
	if err := c.Maintenance(ctx, svc, id, reason); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s/%s: in maintenance\n", svc, id)
	return nil
}

func cmdDrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		opts client.DrainOptions
		off  bool
	)
	fs, cf, c, err := clientCommand("drain", "drain NAME ID [-timeout D] [-wait-connections] [-keep] [-off] [flags]\n\n"+
		"Marks an instance draining — DNS and the proxies send it no new traffic — and waits\n"+
		"until every live DNS server and proxy serves that change (with -wait-connections,\n"+
		"also until the proxies hold no connection to it), or -timeout; then deregisters it\n"+
		"unless -keep. Exits 0 when every reader confirmed, 3 when the wait timed out",
		args, 2, 2, stderr, func(fs *flag.FlagSet) {
			fs.DurationVar(&opts.Timeout, "timeout", 30*time.Second, "longest wait for the readers, more than 0 and at most 10m")
			fs.BoolVar(&opts.Connections, "wait-connections", false, "wait also until no proxy holds a connection to the instance")
			fs.BoolVar(&opts.Keep, "keep", false, "leave the instance registered, draining (end it with -off)")
			fs.BoolVar(&off, "off", false, "end the drain of an instance left registered with -keep")
		})
	if err != nil {
		return err
	}
	svc, id := fs.Arg(0), fs.Arg(1)
	if !off && (opts.Timeout <= 0 || opts.Timeout > 10*time.Minute) {
		fmt.Fprintf(stderr, "netsel drain: -timeout %v is not in (0, 10m]\n", opts.Timeout)
		return errUsage
	}
	if off {
		ctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		if err := c.EndDrain(ctx, svc, id); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s/%s: drain ended\n", svc, id)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout+opts.Timeout)
	defer cancel()
	res, err := c.Drain(ctx, svc, id, opts)
	if err != nil {
		return err
	}
	if cf.json {
		if err := printJSON(stdout, res); err != nil {
			return err
		}
	} else {
		state := "confirmed by every reader"
		if !res.Confirmed {
			state = fmt.Sprintf("NOT confirmed (%s) by %d of %d readers", res.Ended, len(res.Pending), res.Readers)
		}
		fmt.Fprintf(stdout, "%s/%s: drain %s after %s", svc, id, state, time.Duration(res.Waited).Round(time.Millisecond))
		if res.Deregistered {
			fmt.Fprint(stdout, "; deregistered")
		}
		fmt.Fprintln(stdout)
		if len(res.Pending) > 0 {
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  READER\tKIND\tHOST\tREVISION\tCONNECTIONS\tWAITING FOR")
			for _, p := range res.Pending {
				n := p.Connections[svc+"/"+id]
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%d/%d\t%d\t%s\n", p.ID, p.Kind, dash(p.Host), p.Revision, res.Revision, n, waitingFor(p, res.Revision, n))
			}
			tw.Flush()
		}
	}
	if !res.Confirmed {
		return errNotConfirmed
	}
	return nil
}

func cmdReaders(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	_, cf, c, err := clientCommand("readers", "readers [flags]\n\n"+
		"Lists the live readers of the catalog — each CoreDNS and Caddy of NetSel — with the\n"+
		"catalog revision each serves and its open connections per instance",
		args, 0, 0, stderr, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	list, err := c.Readers(ctx)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "READER\tKIND\tHOST\tREVISION\tUPDATED\tCONNECTIONS\n")
	for _, r := range list.Readers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", r.ID, r.Kind, dash(r.Host), r.Revision, r.Updated.Format(time.RFC3339), formatConnections(r.Connections))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "(catalog revision %d)\n", list.Index)
	return nil
}

// errNotConfirmed is the exit of a drain that timed out (exit code 3).
var errNotConfirmed = errors.New("the drain was not confirmed by every reader")

func formatConnections(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, ",")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// waitingFor says what a drain that timed out still waited for from a
// pending reader: the drain's revision, its connections to the instance, or
// — once both are done — the TTL of the DNS answers it gave before the mark.
func waitingFor(p api.ReaderView, rev int64, conns int) string {
	switch {
	case p.Revision < rev:
		return "revision"
	case conns > 0:
		return "connections"
	case p.AnswerTTL > 0:
		return fmt.Sprintf("its answers' TTL (%s)", time.Duration(p.AnswerTTL))
	}
	return "-"
}
