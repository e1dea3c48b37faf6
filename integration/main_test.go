package integration

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"ustack/tun"
)

// devPrefix starts the name of every TUN device the tests ask ustack to
// create, so that TestMain can look for leftovers.
const devPrefix = "uit"

var (
	// ustackBin is the ustack binary TestMain builds.
	ustackBin string
	// skipReason, if set, is why every test skips (not root).
	skipReason string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		msg := "integration tests need root (CAP_SYS_ADMIN for network namespaces, CAP_NET_ADMIN for TUN devices): run them with sudo"
		if os.Getenv("CI") != "" {
			fmt.Fprintf(os.Stderr, "integration: CI is set but uid is %d: %s\n", os.Geteuid(), msg)
			return 1
		}
		skipReason = msg
		return m.Run()
	}

	dir, err := os.MkdirTemp("", "ustack-integration-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	// The binary must be executable by nobody for TestServeWithoutCapNetAdmin.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	ustackBin = filepath.Join(dir, "ustack")
	if prebuilt := os.Getenv("USTACK_BIN"); prebuilt != "" {
		// Test a given binary instead of building one.
		b, err := os.ReadFile(prebuilt)
		if err == nil {
			err = os.WriteFile(ustackBin, b, 0o755)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "integration: USTACK_BIN: %v\n", err)
			return 1
		}
	} else if err := build(ustackBin); err != nil {
		fmt.Fprintf(os.Stderr, "integration: building ustack: %v\n", err)
		return 1
	}

	code := m.Run()

	if !noLeftovers() {
		code = 1
	}
	return code
}

// noLeftovers checks that no namespace this process created (as `ip netns
// list` and tun.Leftovers see them) and no TUN device named like the
// tests' remains, reports any, and deletes the namespaces it finds.
func noLeftovers() bool {
	left, err := tun.Leftovers(os.Getpid(), devPrefix)
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: looking for leftovers: %v\n", err)
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: ip netns list: %v\n", err)
		return false
	}
	mine := fmt.Sprintf("-%d-", os.Getpid())
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], tun.NamespacePrefix) && strings.Contains(f[0], mine) && !slices.Contains(left, "netns "+f[0]) {
			left = append(left, "netns "+f[0])
		}
	}
	if len(left) == 0 {
		return true
	}
	fmt.Fprintf(os.Stderr, "integration: FAIL: the tests left behind: %s\n", strings.Join(left, ", "))
	for _, l := range left {
		if name, ok := strings.CutPrefix(l, "netns "); ok {
			exec.CommandContext(ctx, "ip", "netns", "del", name).Run()
		}
	}
	return false
}

// build compiles ./cmd/ustack of the module this package belongs to.
func build(out string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/ustack")
	cmd.Dir = root
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/ustack in %s: %v\n%s", root, err, b.String())
	}
	return nil
}

// moduleRoot finds the directory of module ustack's go.mod, from the
// working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]) == "module ustack" {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of module ustack above the working directory")
		}
		dir = parent
	}
}

// requireRoot skips the test when TestMain found it cannot run.
func requireRoot(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// requireTool skips the test if a program it runs is missing (fails under
// CI, where the tools are installed).
func requireTool(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed (CI installs it): %v", name, err)
			}
			t.Skipf("%s is not installed: %v", name, err)
		}
	}
}
