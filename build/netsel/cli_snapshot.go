package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

const snapshotUsage = `Usage:
  netsel snapshot save FILE             write the services, their VIPs and ports to FILE ("-": stdout)
  netsel snapshot restore [-force] FILE write them back, all or nothing ("-": stdin);
                                        -force overwrites the services FILE names

Both are admin actions. Run "netsel snapshot save -h" for the flags.
`

// cmdSnapshot runs "netsel snapshot save|restore".
func cmdSnapshot(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, snapshotUsage)
		return errUsage
	}
	switch args[0] {
	case "save":
		return cmdSnapshotSave(ctx, args[1:], stdout, stderr)
	case "restore":
		return cmdSnapshotRestore(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "netsel snapshot: unknown command %q\n\n%s", args[0], snapshotUsage)
	return errUsage
}

func cmdSnapshotSave(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, _, c, err := clientCommand("snapshot save", "snapshot save FILE [flags]\n\nWrites NetSel's persistent state — every service, its VIP and ports — to FILE (\"-\": stdout) as JSON (admin)", args, 1, 1, stderr, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	snap, err := c.SaveSnapshot(ctx)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(snap, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if fs.Arg(0) == "-" {
		_, err = stdout.Write(b)
		return err
	}
	if err := writeFileAtomic(fs.Arg(0), b); err != nil {
		return err
	}
	for _, s := range snap.Skipped {
		fmt.Fprintf(stderr, "warning: not saved, unreadable: %s\n", s)
	}
	fmt.Fprintf(stdout, "saved %d services (etcd revision %d) to %s\n", len(snap.Services), snap.Revision, fs.Arg(0))
	return nil
}

// writeFileAtomic writes b to name through a temporary file beside it, so
// that name holds either its old content or all of b.
func writeFileAtomic(name string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

func cmdSnapshotRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var force bool
	fs, _, c, err := clientCommand("snapshot restore", "snapshot restore [-force] FILE [flags]\n\nWrites the services of a snapshot FILE (\"-\": stdin) back, with their VIPs and ports, in one transaction: all or nothing (admin).\nWithout -force the registry must hold no service", args, 1, 1, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&force, "force", false, "restore over existing services: those FILE names are overwritten with its records (VIPs and ports), the others are kept")
	})
	if err != nil {
		return err
	}
	var b []byte
	if fs.Arg(0) == "-" {
		b, err = io.ReadAll(os.Stdin)
	} else {
		b, err = os.ReadFile(fs.Arg(0))
	}
	if err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	if !json.Valid(b) {
		return fmt.Errorf("%s is not a JSON snapshot (written by \"netsel snapshot save\")", fs.Arg(0))
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	res, err := c.RestoreSnapshot(ctx, b, force)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %d services (etcd revision %d)", res.Services, res.Revision)
	if len(res.Replaced) > 0 {
		fmt.Fprintf(stdout, "; replaced %d that existed: %s", len(res.Replaced), strings.Join(res.Replaced, ", "))
	}
	fmt.Fprintln(stdout)
	return nil
}
