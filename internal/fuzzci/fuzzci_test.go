package fuzzci

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// With USTACK_FUZZ=ci, TestFuzzTargets shares this much time among the targets,
// its self-check included: each gets an equal share of what is left less
// what a run costs beyond fuzzing (building, the baseline coverage), at
// least minPerTarget. With a warm build cache, 24 targets get about 3 s
// each and the whole test takes the budget; the first run on a machine
// also builds every package with fuzzing instrumentation, about a minute
// and a half more.
const (
	ciBudget     = 140 * time.Second
	minPerTarget = time.Second
)

// TestFuzzTargets runs every fuzz target of the module for a bounded time,
// one go test -fuzz at a time (one worker each, leaving a core to the
// packages go test ./... runs beside it), and fails naming the target and
// the failing input go test wrote. It runs with USTACK_FUZZ=ci (the
// README's test command, after everything else) or with
// USTACK_FUZZ_SECONDS=N (N seconds per target), and skips otherwise.
func TestFuzzTargets(t *testing.T) {
	start := time.Now()
	fixed, how := time.Duration(0), "USTACK_FUZZ=ci"
	if s := os.Getenv("USTACK_FUZZ_SECONDS"); s != "" {
		n, err := strconv.ParseFloat(s, 64)
		if err != nil || n <= 0 {
			t.Fatalf("USTACK_FUZZ_SECONDS=%q: want a positive number of seconds per fuzz target, e.g. USTACK_FUZZ_SECONDS=10", s)
		}
		fixed, how = time.Duration(n*float64(time.Second)), "USTACK_FUZZ_SECONDS"
	} else if os.Getenv("USTACK_FUZZ") != "ci" {
		t.Skip("fuzzing every target takes about 2.5 minutes: run it with USTACK_FUZZ=ci go test ./internal/fuzzci, " +
			"or USTACK_FUZZ_SECONDS=N go test -v ./internal/fuzzci for N seconds per target")
	}
	root := moduleRoot(t)
	targets, err := Find(root)
	if err != nil {
		t.Fatal(err)
	}
	if fixed > 0 {
		t.Logf("%s: %d fuzz targets, %v each", how, len(targets), fixed)
	} else {
		t.Logf("%s: %d fuzz targets sharing %v", how, len(targets), ciBudget)
	}

	// First show that a failing target fails here, with its input named.
	selfCheck(t)

	ctx := context.Background()
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-10*time.Second))
		defer cancel()
	}
	overhead, runs := 2*time.Second, 0 // a first guess, then the mean seen
	var spent time.Duration
	for i, tg := range targets {
		per := fixed
		if per == 0 {
			per = Share(ciBudget-time.Since(start), len(targets)-i, overhead, minPerTarget)
		}
		r := Run(ctx, root, tg, per, 1)
		spent += max(0, r.Elapsed-per)
		runs++
		overhead = spent / time.Duration(runs)
		if r.Err != nil {
			msg := fmt.Sprintf("fuzz target %s failed: %v", tg, r.Err)
			if r.Crasher != "" {
				msg += fmt.Sprintf("\nfailing input: %s (now a corpus entry: go test -run '%s/%s' %s reproduces it)",
					r.Crasher, tg.Name, filepath.Base(r.Crasher), tg.Pkg)
			}
			t.Errorf("%s\n%s", msg, tail(r.Output, 40))
			if ctx.Err() != nil {
				t.Fatalf("out of time after %v", time.Since(start).Round(time.Second))
			}
			continue
		}
		note := ""
		if r.DeadlineRace {
			note = ` (go test said "context deadline exceeded" at the end, with no failing input: go.dev/issue/75804, not a failure)`
		}
		t.Logf("%-45s ok: fuzzed %v, %v in all%s", tg, per, r.Elapsed.Round(100*time.Millisecond), note)
	}
	t.Logf("%d targets in %v", len(targets), time.Since(start).Round(time.Second))
}

// TestShare: equal shares of what is left, never below the minimum.
func TestShare(t *testing.T) {
	for _, tc := range []struct {
		left            time.Duration
		n               int
		overhead, least time.Duration
		want            time.Duration
	}{
		{120 * time.Second, 24, 2 * time.Second, time.Second, 3 * time.Second},
		{120 * time.Second, 1, 2 * time.Second, time.Second, 118 * time.Second},
		{10 * time.Second, 24, 2 * time.Second, time.Second, time.Second},
		{-5 * time.Second, 3, 2 * time.Second, time.Second, time.Second},
		{100 * time.Second, 3, 0, time.Second, 33300 * time.Millisecond},
	} {
		if got := Share(tc.left, tc.n, tc.overhead, tc.least); got != tc.want {
			t.Errorf("Share(%v, %d, %v, %v) = %v, want %v", tc.left, tc.n, tc.overhead, tc.least, got, tc.want)
		}
	}
}

// selfCheck runs a fuzz target that fails on its own module in a temporary
// directory, and checks that Run reports it with the input it wrote.
func selfCheck(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module fuzzselfcheck\n\ngo 1.22\n",
		"x_test.go": `package x

import "testing"

func FuzzFails(f *testing.F) {
	f.Add([]byte("ok"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 3 {
			t.Fatal("planted failure")
		}
	})
}
`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tg := Target{".", "FuzzFails"}
	r := Run(context.Background(), dir, tg, 30*time.Second, 1)
	if r.Err == nil || r.Crasher == "" {
		t.Fatalf("a failing target: error %v, crasher %q\n%s", r.Err, r.Crasher, r.Output)
	}
	if _, err := os.Stat(filepath.Join(dir, r.Crasher)); err != nil {
		t.Fatalf("the crasher named: %v\n%s", err, r.Output)
	}
}

func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := ModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestFind: the module's targets are all found, FuzzUDPInput and the IPv6
// ones among them.
func TestFind(t *testing.T) {
	targets, err := Find(moduleRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []Target{
		{"./stack/udp", "FuzzUDPInput"},
		{"./stack/header", "FuzzUDP"},
		{"./stack/ipv6", "FuzzIPv6Input"},
		{"./stack/ipv6", "FuzzICMPv6"},
		{"./stack/ipv6", "FuzzExtHeaders"},
		{"./stack/ipv6", "FuzzReassembly"},
		{"./stack/ipv4", "FuzzReassembly"},
		{"./stack/tcp", "FuzzEstablishedSegments"},
		{"./tlslite", "FuzzReadRecordServer"},
	} {
		if !slices.Contains(targets, want) {
			t.Errorf("%v not found among %v", want, targets)
		}
	}
	if !slices.IsSortedFunc(targets, func(a, b Target) int { return strings.Compare(a.String(), b.String()) }) {
		t.Errorf("not sorted: %v", targets)
	}
}

// TestFindRule: go test's rule on a module of near misses.
func TestFindRule(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module m\n")
	write("a/a_test.go", `package a

import tt "testing"

type x struct{}

func Fuzz(f *tt.F)                {}
func FuzzA(f *tt.F)               {}
func Fuzz_b(f *tt.F)              {}
func Fuzzy(f *tt.F)               {} // lower case after Fuzz: not a target
func FuzzT(t *tt.T)               {} // not *testing.F
func FuzzTwo(f *tt.F, n int)      {}
func (x) FuzzMethod(f *tt.F)      {}
func FuzzResult(f *tt.F) error    { return nil }
`)
	write("a/a.go", "package a\n\nimport \"testing\"\n\nfunc FuzzNotATest(f *testing.F) {}\n")
	write("a/ignored_test.go", "//go:build ignore\n\npackage a\n\nimport \"testing\"\n\nfunc FuzzIgnored(f *testing.F) {}\n")
	write("a/testdata/t_test.go", "package t\n\nimport \"testing\"\n\nfunc FuzzData(f *testing.F) {}\n")
	write("sub/go.mod", "module sub\n")
	write("sub/s_test.go", "package s\n\nimport \"testing\"\n\nfunc FuzzSub(f *testing.F) {}\n")
	write("b/b_test.go", "package b\n\nimport \"testing\"\n\nfunc FuzzB(f *testing.F) {}\n")
	write("root_test.go", "package m\n\nimport \"testing\"\n\nfunc FuzzRoot(f *testing.F) {}\n")
	got, err := Find(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []Target{{".", "FuzzRoot"}, {"./a", "Fuzz"}, {"./a", "FuzzA"}, {"./a", "Fuzz_b"}, {"./b", "FuzzB"}}
	if !slices.Equal(got, want) {
		t.Fatalf("Find = %v, want %v", got, want)
	}
}

// TestCrasher: the failing input's path from go test -fuzz's output.
func TestCrasher(t *testing.T) {
	out := []byte(`--- FAIL: FuzzX (0.05s)
    --- FAIL: FuzzX (0.00s)
        x_test.go:9: boom

    Failing input written to testdata/fuzz/FuzzX/771e938e4458e983
    To re-run:
    go test -run=FuzzX/771e938e4458e983
FAIL
`)
	if got := Crasher(out); got != "testdata/fuzz/FuzzX/771e938e4458e983" {
		t.Fatalf("Crasher = %q", got)
	}
	if got := Crasher([]byte("PASS\nok  \tm\t1.0s\n")); got != "" {
		t.Fatalf("Crasher of a pass = %q", got)
	}
}

// TestDeadlineRace: go test's stray "context deadline exceeded" at the
// end of -fuzztime is told from real failures.
func TestDeadlineRace(t *testing.T) {
	race := `fuzz: elapsed: 3s, execs: 29579 (9857/sec), new interesting: 4 (total: 6)
--- FAIL: FuzzUnmarshalFinished (3.06s)
    context deadline exceeded
FAIL
exit status 1
FAIL	ustack/tlslite	3.065s
`
	if !deadlineRace([]byte(race)) {
		t.Error("the coordinator's race not recognised")
	}
	for _, out := range []string{
		"--- FAIL: FuzzX (3.0s)\n    x_test.go:9: context deadline exceeded\n    context deadline exceeded\nFAIL\n",
		"--- FAIL: TestY (0.0s)\n    context deadline exceeded\n--- FAIL: FuzzX (3.0s)\n    context deadline exceeded\nFAIL\n",
		"--- FAIL: FuzzX (3.0s)\n    fuzzing process hung or terminated unexpectedly: exit status 2\nFAIL\n",
		"PASS\n",
	} {
		if deadlineRace([]byte(out)) {
			t.Errorf("taken for the race:\n%s", out)
		}
	}
}
