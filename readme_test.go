package ustack_test

import (
	"os"
	"strings"
	"testing"
)

// readmeTestCommand is the second command line of the README's first
// ```sh block, its comment cut off: the tests.
func readmeTestCommand(readme string) (string, bool) {
	_, rest, ok := strings.Cut(readme, "```sh\n")
	if !ok {
		return "", false
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		return "", false
	}
	var cmds []string
	for _, line := range strings.Split(block, "\n") {
		if cmd, _, _ := strings.Cut(line, "#"); strings.TrimSpace(cmd) != "" {
			cmds = append(cmds, strings.Join(strings.Fields(cmd), " "))
		}
	}
	if len(cmds) < 2 {
		return "", false
	}
	return cmds[1], true
}

// ciTestCommand is the line of .ci/run after "# The README's test command:".
func ciTestCommand(script string) (string, bool) {
	_, rest, ok := strings.Cut(script, "# The README's test command:\n")
	if !ok {
		return "", false
	}
	line, _, _ := strings.Cut(rest, "\n")
	line = strings.Join(strings.Fields(line), " ")
	return line, line != ""
}

// TestCIRunsTheREADMEsTestCommand: .ci/run runs exactly the test command
// the README gives (fuzzing included: its last step runs internal/fuzzci
// with USTACK_FUZZ=ci).
func TestCIRunsTheREADMEsTestCommand(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(".ci/run")
	if err != nil {
		t.Fatal(err)
	}
	want, ok := readmeTestCommand(string(readme))
	if !ok {
		t.Fatal("README.md: no second command line in its first ```sh block (the test command)")
	}
	got, ok := ciTestCommand(string(script))
	if !ok {
		t.Fatal(`.ci/run: no command on the line after "# The README's test command:"`)
	}
	if got != want {
		t.Fatalf(".ci/run runs %q, the README says %q: make them the same", got, want)
	}
	if !strings.Contains(want, "go test ./...") {
		t.Fatalf("the README's test command %q does not run go test ./...", want)
	}
}

// TestCommandExtraction: the two parsers on small inputs, mismatches
// included, so that the check above can fail.
func TestCommandExtraction(t *testing.T) {
	readme := "# x\n\n```sh\ngo run ./cmd/ustack demo   # the demo\ngo test ./... && go test -race ./stack/...   # the tests\n```\n\n```sh\nother\n```\n"
	if got, ok := readmeTestCommand(readme); !ok || got != "go test ./... && go test -race ./stack/..." {
		t.Errorf("readmeTestCommand = %q, %v", got, ok)
	}
	if _, ok := readmeTestCommand("```sh\nonly one\n```\n"); ok {
		t.Error("a block of one command gave a test command")
	}
	script := "set -e\n# The README's test command:\ngo test ./...  && go test -race ./stack/...\n"
	if got, ok := ciTestCommand(script); !ok || got != "go test ./... && go test -race ./stack/..." {
		t.Errorf("ciTestCommand = %q, %v", got, ok)
	}
	if got, _ := ciTestCommand(strings.Replace(script, "-race ", "", 1)); got == "go test ./... && go test -race ./stack/..." {
		t.Error("a different command compared equal")
	}
}
