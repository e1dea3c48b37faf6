// Package fuzzci finds every fuzz target of the module and runs each one
// for a bounded time, as CI does: go test runs one fuzz target per -fuzz
// invocation, so the targets are listed from the source (every *_test.go
// file, parsed with go/parser) and a new one is never forgotten. Its test,
// TestFuzzTargets, runs with USTACK_FUZZ=ci (the last step of the README's
// test command) or when USTACK_FUZZ_SECONDS is set, and skips otherwise.
package fuzzci

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Target is one fuzz target: the package directory relative to the module
// root ("./stack/udp") and the function's name.
type Target struct {
	Pkg, Name string
}

func (t Target) String() string { return t.Pkg + "." + t.Name }

// ModuleRoot returns the directory holding go.mod, dir or above it.
func ModuleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("no go.mod in this directory or above it")
		}
		dir = up
	}
}

// Find lists the fuzz targets of the module at root, sorted by package and
// name: the top-level functions of *_test.go files named Fuzz followed by
// nothing or by a character that is not a lower-case letter, taking one
// *testing.F (the rule of go test). It skips what the go command skips:
// testdata, vendor and directories whose names start with "." or "_",
// nested modules, and files the build constraints exclude on this
// platform.
func Find(root string) ([]Target, error) {
	var out []Target
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path == root {
				return nil
			}
			if name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // another module
			}
			return nil
		}
		if !strings.HasSuffix(name, "_test.go") || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
			return nil
		}
		dir := filepath.Dir(path)
		if ok, err := build.Default.MatchFile(dir, name); err != nil || !ok {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			return err
		}
		pkg := "./" + filepath.ToSlash(rel)
		if rel == "." {
			pkg = "."
		}
		for _, decl := range f.Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok && isFuzzTarget(fn, testingName(f)) {
				out = append(out, Target{pkg, fn.Name.Name})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Target) int {
		if c := strings.Compare(a.Pkg, b.Pkg); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// testingName is the name file f imports package testing under ("" if it
// does not import it).
func testingName(f *ast.File) string {
	for _, imp := range f.Imports {
		if imp.Path.Value != `"testing"` {
			continue
		}
		if imp.Name != nil {
			return imp.Name.Name
		}
		return "testing"
	}
	return ""
}

// isFuzzTarget applies go test's rule to fn: a function (not a method)
// named Fuzz or FuzzX with X not a lower-case letter, one parameter of type
// *testing.F, no results.
func isFuzzTarget(fn *ast.FuncDecl, testing string) bool {
	name := fn.Name.Name
	if fn.Recv != nil || !strings.HasPrefix(name, "Fuzz") || testing == "" || testing == "_" {
		return false
	}
	if rest := name[len("Fuzz"):]; rest != "" {
		if r, _ := utf8.DecodeRuneInString(rest); unicode.IsLower(r) {
			return false
		}
	}
	ft := fn.Type
	if ft.TypeParams != nil || ft.Results != nil && len(ft.Results.List) > 0 || len(ft.Params.List) != 1 || len(ft.Params.List[0].Names) > 1 {
		return false
	}
	star, ok := ft.Params.List[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == testing && sel.Sel.Name == "F"
}

// Share is the fuzzing time of the next of n targets when left remains of
// a budget and each run costs overhead beyond its fuzzing time: an equal
// share, rounded down to 100 ms, at least least.
func Share(left time.Duration, n int, overhead, least time.Duration) time.Duration {
	if n <= 0 {
		return least
	}
	return max(least, (left/time.Duration(n) - overhead).Truncate(100*time.Millisecond))
}

// Result is what one run of a fuzz target came to.
type Result struct {
	Target  Target
	Elapsed time.Duration
	Output  []byte
	// Err is nil when the target passed; else the failure, and Crasher the
	// failing input's file (relative to the module root) when go test
	// wrote one.
	Err     error
	Crasher string
	// DeadlineRace: go test failed with "context deadline exceeded" at
	// the end of -fuzztime and wrote no failing input: the race of Go's
	// fuzzing coordinator (go.dev/issue/75804, fixed in Go 1.27), not a
	// failure of the target. Err is nil then.
	DeadlineRace bool
}

// Run fuzzes t for d with go test -run '^$' -fuzz '^Name$' -fuzztime d in
// the module at root, with parallel workers (0: go test's default,
// GOMAXPROCS).
func Run(ctx context.Context, root string, t Target, d time.Duration, parallel int) Result {
	args := []string{"test", "-run", "^$", "-fuzz", "^" + t.Name + "$", "-fuzztime", d.String()}
	if parallel > 0 {
		args = append(args, "-parallel", fmt.Sprint(parallel))
	}
	args = append(args, t.Pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	start := time.Now()
	out, err := cmd.CombinedOutput()
	r := Result{Target: t, Elapsed: time.Since(start), Output: out}
	if err != nil {
		r.Err = fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
		if c := Crasher(out); c != "" {
			r.Crasher = filepath.ToSlash(filepath.Join(t.Pkg, c))
		} else if ctx.Err() == nil && r.Elapsed >= d && deadlineRace(out) {
			r.Err, r.DeadlineRace = nil, true
		}
	}
	return r
}

// deadlineRace reports whether a failed go test -fuzz run's output is the
// coordinator's stray "context deadline exceeded" (go.dev/issue/75804):
// the target's only failure message, and no test failed before fuzzing.
func deadlineRace(out []byte) bool {
	var msgs []string
	failed := false
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "--- FAIL: "):
			if failed {
				return false // a second failure: a test or a seed
			}
			failed = true
		case failed && line != "" && line != "FAIL" && !strings.HasPrefix(line, "exit status") && !strings.HasPrefix(line, "FAIL\t"):
			msgs = append(msgs, line)
		}
	}
	return failed && len(msgs) == 1 && msgs[0] == "context deadline exceeded"
}

var failingInput = regexp.MustCompile(`Failing input written to (\S+)`)

// Crasher returns the path of the failing input a go test -fuzz run's
// output names (relative to the package directory), or "".
func Crasher(out []byte) string {
	m := failingInput.FindSubmatch(out)
	if m == nil {
		return ""
	}
	return string(bytes.TrimSpace(m[1]))
}
