package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"ustack/internal/lab"
)

func cmdLab(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("lab", "", stderr)
	useTUN := fs.Bool("tun", false, "run against the kernel's TCP through a TUN in a fresh network namespace (root)")
	lang := fs.String("lang", "en", "narration language: en or zh")
	noColor := fs.Bool("no-color", false, "plain text even on a terminal")
	jsonOut := fs.Bool("json", false, "write the events as JSON lines (docs/events.md) instead of the ladder")
	noCookies := fs.Bool("no-cookies", false, "syn-flood: run only the half with SYN cookies off")
	svgOut := fs.String("svg", "", "also draw the story as an SVG sequence diagram in `FILE` (lab all: a directory, one NAME.svg per lab)")
	htmlOut := fs.String("html", "", "also write the story as a self-contained HTML page in `FILE` (lab all: a directory, one NAME.html per lab and index.html)")
	v6 := fs.Bool("6", false, "run over IPv6: client 2001:2::1, server 2001:2::2 (with --tun, on the TUN as ustack demo -6)")
	brk := fs.String("break", "", "")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: ustack lab [flags] [SCENARIO|all]\n\nThe textbook stories, each run on the wire, drawn as a ladder diagram and\nchecked. Without a scenario, list them.\n\n")
		fs.VisitAll(func(f *flag.Flag) {
			if f.Name == "break" {
				return // hidden: for the tests that break a lab on purpose
			}
			dash := "--"
			if len(f.Name) == 1 {
				dash = "-" // -6
			}
			fmt.Fprintf(stderr, "  %s%s\t%s (default %q)\n", dash, f.Name, f.Usage, f.DefValue)
		})
	}
	// Flags may come before or after the scenario name.
	var names []string
	rest := args
	for {
		if err := parseFlags(fs, rest, "lab"); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		names = append(names, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if *lang != "en" && *lang != "zh" {
		return usageErr("--lang %q: choose en or zh", *lang)
	}
	if *brk != "" && !contains(lab.Breaks, *brk) {
		return usageErr("--break %q: choose one of %s", *brk, strings.Join(lab.Breaks, ", "))
	}
	if *brk != "" && *useTUN {
		return usageErr("--break breaks the in-memory labs only: run it without --tun")
	}
	opts := lab.Options{TUN: *useTUN, Lang: *lang, Color: !*noColor && !*jsonOut && isTerminal(stdout), JSON: *jsonOut, Break: *brk, SVG: *svgOut, HTML: *htmlOut, NoCookies: *noCookies, IPv6: *v6}
	if len(names) == 0 {
		lab.List(stdout, opts)
		return nil
	}
	if len(names) > 1 {
		lab.List(stderr, lab.Options{Lang: opts.Lang, IPv6: opts.IPv6})
		return usageErr("one scenario at a time (or all), got %s", strings.Join(names, " "))
	}
	if opts.TUN {
		if os.Geteuid() != 0 {
			return errors.New("lab --tun needs root: it creates a network namespace and a TUN device (run without --tun for the in-memory version)")
		}
		if _, err := os.Stat("/dev/net/tun"); err != nil {
			return fmt.Errorf("lab --tun: %w", err)
		}
	}
	if opts.NoCookies && names[0] != "syn-flood" {
		return usageErr("--no-cookies is for the syn-flood lab only")
	}
	if names[0] == "all" {
		return lab.All(stdout, opts)
	}
	if !lab.Exists(names[0]) {
		lab.List(stderr, lab.Options{Lang: opts.Lang, IPv6: opts.IPv6})
		return usageErr("unknown scenario %q", names[0])
	}
	return lab.Run(stdout, names[0], opts)
}
