package main

import (
	"flag"
	"fmt"
	"net"
	"time"

	"ustack/stack"
)

// sockFlags are serve's socket controls: listen(2)'s backlog, and the
// options set on every accepted connection.
type sockFlags struct {
	backlog     int
	userTimeout time.Duration
	linger      lingerFlag
}

func (f *sockFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.backlog, "backlog", defaultBacklog, "accept-queue length of every listener, like listen(2)'s `N` (the queue holds N+1)")
	fs.DurationVar(&f.userTimeout, "user-timeout", 0, "TCP_USER_TIMEOUT (RFC 5482) on every accepted connection: abort it when data stays unacknowledged for `D` (0: off)")
	fs.Var(&f.linger, "linger", "SO_LINGER on every accepted connection: close waits up to `D` (whole seconds) for the peer's ACK; 0: every close is an abort with RST (default off)")
}

// defaultBacklog is the stack's own default (stack.Options.Backlog).
const defaultBacklog = 128

func (f *sockFlags) validate() error {
	if f.backlog < 1 || f.backlog > 65535 {
		return usageErr("--backlog %d is out of range: use 1 to 65535 (default %d; example: --backlog 16)", f.backlog, defaultBacklog)
	}
	if f.userTimeout < 0 {
		return usageErr("--user-timeout %v must not be negative: give a duration like 30s, or 0 to turn it off", f.userTimeout)
	}
	return nil
}

// listenConfig is the listeners' configuration.
func (f *sockFlags) listenConfig() stack.ListenConfig {
	return stack.ListenConfig{Backlog: f.backlog}
}

// setup applies the options to an accepted connection of the stack.
func (f *sockFlags) setup(c net.Conn) {
	sc, ok := c.(*stack.Conn)
	if !ok {
		return
	}
	if f.userTimeout > 0 {
		sc.SetUserTimeout(f.userTimeout)
	}
	if f.linger.set {
		sc.SetLinger(f.linger.sec)
	}
}

// lingerFlag is --linger: unset (off), or a whole number of seconds.
type lingerFlag struct {
	set bool
	sec int
}

func (l *lingerFlag) String() string {
	if l == nil || !l.set {
		return ""
	}
	return (time.Duration(l.sec) * time.Second).String()
}

func (l *lingerFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d%time.Second != 0 || d > 24*time.Hour {
		return fmt.Errorf("want whole seconds from 0 to 24h, like 0 or 5s (SO_LINGER counts seconds; 0 aborts every close with RST)")
	}
	l.set, l.sec = true, int(d/time.Second)
	return nil
}
