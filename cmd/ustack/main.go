// Command ustack runs the ustack userspace TCP/IP stack: serve services on a
// TUN device, fetch a URL through it, tell the whole HTTPS story (demo),
// benchmark it (bench) and run the textbook labs (lab).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

const usage = `ustack — a userspace TCP/IP stack behind a TUN device

Usage:
  ustack serve [flags]            run services on a TUN device until SIGINT/SIGTERM
  ustack get URL [flags]          fetch a URL through the stack
  ustack demo                     the whole story in one command, with a trace
  ustack bench [flags]            kernel vs ustack vs gVisor netstack
  ustack lab [SCENARIO]           the textbook stories, each verified on the wire

Run 'ustack COMMAND -h' for the flags of a command.
`

// errUsage marks a command-line mistake: exit status 2.
var errUsage = errors.New("usage")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = cmdServe(rest, stdout, stderr)
	case "get":
		err = cmdGet(rest, stdout, stderr)
	case "bench":
		err = cmdBench(rest, stdout, stderr)
	case "demo":
		err = cmdDemo(rest, stdout, stderr)
	case "lab":
		err = cmdLab(rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "ustack: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "ustack: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "ustack: %v\n", err)
		return 1
	}
}

// usageErr wraps a command-line mistake with what to do about it.
func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}
