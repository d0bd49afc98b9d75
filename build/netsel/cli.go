package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/netsel/netsel/registrar/api"
	"github.com/netsel/netsel/registrar/client"
)

// clientFlags are the flags every client command shares.
type clientFlags struct {
	registrar string
	tokenFile string
	caFile    string
	certFile  string
	keyFile   string
	json      bool
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	def := os.Getenv("NETSEL_REGISTRAR")
	if def == "" {
		def = "http://127.0.0.1:9000"
	}
	fs.StringVar(&f.registrar, "registrar", def, "comma-separated registrar URLs ($NETSEL_REGISTRAR)")
	fs.StringVar(&f.tokenFile, "token-file", os.Getenv("NETSEL_TOKEN_FILE"), "file holding the bearer token for writes ($NETSEL_TOKEN_FILE)")
	fs.StringVar(&f.caFile, "ca", os.Getenv("NETSEL_CA_FILE"), "CA bundle that signed the registrar's certificate ($NETSEL_CA_FILE)")
	fs.StringVar(&f.certFile, "cert", os.Getenv("NETSEL_CERT_FILE"), "client certificate, when the registrar requires one ($NETSEL_CERT_FILE)")
	fs.StringVar(&f.keyFile, "key", os.Getenv("NETSEL_KEY_FILE"), "client key for -cert ($NETSEL_KEY_FILE)")
	fs.BoolVar(&f.json, "json", false, "print JSON instead of a table")
}

func (f *clientFlags) client(logger *slog.Logger) (*client.Client, error) {
	var token string
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	return client.New(client.Config{
		URLs:     strings.Split(f.registrar, ","),
		Token:    token,
		Logger:   logger,
		CAFile:   f.caFile,
		CertFile: f.certFile,
		KeyFile:  f.keyFile,
	})
}

// parse parses a client command's flags, wanting between min and max
// positional arguments. Flags may come before, between or after the
// positional arguments ("register web -port 8080" as well as "register
// -port 8080 web"); after "--" everything is positional. fs.Args holds the
// positional arguments afterwards.
func parse(fs *flag.FlagSet, args []string, min, max int) error {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if n := len(pos); n < min || n > max {
		fs.Usage()
		return errUsage
	}
	// Leave the positional arguments where fs.Arg finds them.
	return fs.Parse(append([]string{"--"}, pos...))
}

// parseInterspersed parses args with fs, taking the flags wherever they
// are, and returns the other arguments in order.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("netsel "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: netsel %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// requestTimeout bounds one request of a client command.
const requestTimeout = 15 * time.Second

// clientCommand parses the flags of a client command — the shared ones,
// plus those extra adds — wanting between min and max positional
// arguments, and returns the flag set, the shared flags and a client.
func clientCommand(name, synopsis string, args []string, min, max int, stderr io.Writer, extra func(*flag.FlagSet)) (*flag.FlagSet, *clientFlags, *client.Client, error) {
	fs := newFlagSet(name, synopsis, stderr)
	cf := &clientFlags{}
	cf.register(fs)
	if extra != nil {
		extra(fs)
	}
	if err := parse(fs, args, min, max); err != nil {
		return nil, nil, nil, err
	}
	c, err := cf.client(quietLogger(stderr))
	if err != nil {
		return nil, nil, nil, err
	}
	return fs, cf, c, nil
}

func quietLogger(stderr io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func cmdServices(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	_, cf, c, err := clientCommand("services", "services [flags]", args, 0, 0, stderr, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	list, err := c.Services(ctx)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tVIP\tPORTS\tINSTANCES")
	for _, s := range list.Services {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", s.Name, s.VIP, formatPorts(s.Ports), s.Instances)
	}
	return tw.Flush()
}

func cmdInstances(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var state string
	fs, cf, c, err := clientCommand("instances", "instances NAME [flags]", args, 1, 1, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&state, "state", "any", `instances to list: "any", one state (passing, warning, critical, maintenance, draining), or "" for those the API lists by default (all but critical and maintenance)`)
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	svc, err := c.ServiceByState(ctx, fs.Arg(0), state)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, svc)
	}
	printService(stdout, svc)
	return nil
}

func printService(w io.Writer, svc *api.ServiceView) {
	fmt.Fprintf(w, "%s  vip %s  ports %s  index %d\n", svc.Name, svc.VIP, formatPorts(svc.Ports), svc.Index)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tADDRESS\tHOST\tSTATE\tWEIGHT\tZONE\tREGISTERED")
	for _, in := range svc.Instances {
		addr := net.JoinHostPort(in.Address.String(), strconv.Itoa(in.Port))
		if len(in.Ports) > 0 {
			addr += " " + formatNamedPorts(in.Ports)
		}
		host := "-"
		if in.Host.IsValid() {
			host = in.Host.String()
		}
		state := in.State
		if in.Reason != "" {
			state += " (" + in.Reason + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%s\t%s\n", in.ID, addr, host, dash(state), in.Weight, in.Zone, in.Registered.Format(time.RFC3339))
	}
	tw.Flush()
}

func formatPorts(ports []api.Port) string {
	var parts []string
	for _, p := range ports {
		parts = append(parts, fmt.Sprintf("%s=%d/%s", p.Name, p.Port, p.Protocol))
	}
	return strings.Join(parts, ",")
}

func formatNamedPorts(ports map[string]int) string {
	names := make([]string, 0, len(ports))
	for n := range ports {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s=%d", n, ports[n])
	}
	return "(" + strings.Join(parts, ",") + ")"
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func cmdDeregister(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, _, c, err := clientCommand("deregister", "deregister NAME ID [flags]", args, 2, 2, stderr, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if err := c.Deregister(ctx, fs.Arg(0), fs.Arg(1)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "deregistered %s/%s\n", fs.Arg(0), fs.Arg(1))
	return nil
}

func cmdDeleteService(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, _, c, err := clientCommand("delete-service", "delete-service NAME [flags]\n\nRemoves a service with no live instances and frees its VIP (admin)", args, 1, 1, stderr, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if err := c.DeleteService(ctx, fs.Arg(0)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "deleted service %s and freed its VIP\n", fs.Arg(0))
	return nil
}

func cmdWatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var wait time.Duration
	fs, cf, c, err := clientCommand("watch", "watch [NAME] [flags]\n\nPrints the service (or the list of services) now and after every change, until interrupted",
		args, 0, 1, stderr, func(fs *flag.FlagSet) {
			fs.DurationVar(&wait, "wait", 5*time.Minute, "longest wait of one blocking query")
		})
	if err != nil {
		return err
	}
	name := fs.Arg(0)
	var index int64
	for ctx.Err() == nil {
		var (
			next int64
			out  any
		)
		if name != "" {
			out, next, err = c.Watch(ctx, name, index, wait)
		} else {
			out, next, err = c.WatchServices(ctx, index, wait)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			fmt.Fprintf(stderr, "watch: %v; retrying\n", err)
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
			continue
		}
		if next == index {
			continue // the wait ended without a change
		}
		index = next
		if cf.json {
			printJSON(stdout, out)
			continue
		}
		fmt.Fprintf(stdout, "--- %s (index %d)\n", time.Now().Format(time.TimeOnly), index)
		switch v := out.(type) {
		case *api.ServiceView:
			if v == nil {
				fmt.Fprintf(stdout, "%s is not registered\n", name)
			} else {
				printService(stdout, v)
			}
		case *api.ServiceList:
			for _, s := range v.Services {
				fmt.Fprintf(stdout, "%s  vip %s  instances %d\n", s.Name, s.VIP, s.Instances)
			}
		}
	}
	return nil
}
