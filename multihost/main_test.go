package multihost

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// bin holds the programs the tests run on hosts, built once by TestMain.
var bin struct{ netsel, service, client string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "netsel-multihost-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin.netsel, bin.service, bin.client = filepath.Join(dir, "netsel"), filepath.Join(dir, "service"), filepath.Join(dir, "client")
	for out, pkg := range map[string]string{bin.netsel: "./build/netsel", bin.service: "./examples/service", bin.client: "./examples/client"} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = ".."
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, b)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
