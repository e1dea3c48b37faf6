package lab

import (
	"context"
	"io"
	"strings"
	"time"

	"ustack/internal/record"
	"ustack/internal/waitfor"
	"ustack/stack/header"
	"ustack/stack/tcp"
)

// labFinWait2 is how long the in-memory client waits in FIN-WAIT-2 once
// its application has closed: Linux's tcp_fin_timeout, 60 s.
const labFinWait2 = 60 * time.Second

// labCloseWaitHours is how long the in-memory server's application
// forgets to close.
const labCloseWaitHours = 3 * time.Hour

// checkLateFIN checks the end of the close-wait story: the server's late
// FIN is answered with RST by a client that forgot the connection, and
// the server's connection ends on it.
func (r *labRun) checkLateFIN(pk []record.Pkt) {
	fin, okF := record.First(pk, func(p record.Pkt) bool { return !p.ToServer && p.Has(header.FlagFIN) })
	rst, okR := record.First(pk, func(p record.Pkt) bool { return p.ToServer && p.Has(header.FlagRST) })
	r.check(okF && okR && !rst.T.Before(fin.T) && rst.Seq == fin.Ack,
		"the server's late FIN is answered with RST seq=%d: the client has forgotten the connection", fin.Ack)
	ss := r.rec.States(true, 0)
	_, end, _ := r.rec.StateAt(true, 0, tcp.Closed)
	r.check(record.HasRun(ss, "CLOSE-WAIT", "LAST-ACK", "CLOSED") && strings.Contains(end.Cause, "RST"),
		"server: CLOSE-WAIT → LAST-ACK → CLOSED, ended by the RST (%s; %s)", arrowJoin(ss), end.Cause)
}

// labCloseWait: the client closes; the server's application reads EOF
// but never closes: CLOSE-WAIT for hours, while the client gave up in
// FIN-WAIT-2. The late FIN meets an RST.
func labCloseWait(r *labRun) error {
	cli := tcp.Config{MSL: labMSL, FinWait2Timeout: labFinWait2}
	w, ln, err := r.vListen(labVConfig{cli: cli, srv: tcp.Config{MSL: labMSL}, cliSeed: 9, srvSeed: 9})
	if err != nil {
		return err
	}
	defer w.close()
	r.ladderHeader()
	c, sc, err := w.establish(ln)
	if err != nil {
		return err
	}
	r.say("the client is done: its application closes the connection (close: it will neither send nor read) and sends FIN")
	c.Close()
	w.settle()
	_, rerr := sc.TryRead(make([]byte, 10))
	r.say("the server's application reads end of file (%v) but never calls close (a bug: a leaked descriptor)", rerr)
	r.say("the client waits in FIN-WAIT-2 for the server's FIN; its application has closed, so it waits at most %v (Linux's tcp_fin_timeout)", labFinWait2)
	w.until(2*labFinWait2, func() bool { return w.clientConns() == 0 })
	quiet := w.clk.Now()
	r.say("virtual time runs on for %v; nothing is sent", labCloseWaitHours)
	w.run(labCloseWaitHours)
	st := sc.State()
	r.say("%v later the server's connection is still %s: no timer ends CLOSE-WAIT, only the application's close", labCloseWaitHours, st)
	n := len(r.rec.Packets())
	r.say("at last the server's application closes: FIN")
	sc.Close()
	w.settle()
	pk := r.rec.Packets()

	cs := r.rec.States(false, 0)
	fw2, _, _ := r.rec.StateAt(false, 0, tcp.FinWait2)
	cEnd, _, okC := r.rec.StateAt(false, 0, tcp.Closed)
	r.check(record.HasRun(cs, "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSED") && okC && cEnd.Sub(fw2) == labFinWait2,
		"client: ESTABLISHED → FIN-WAIT-1 → FIN-WAIT-2 → CLOSED, %v after it entered FIN-WAIT-2 (%s)", labFinWait2, arrowJoin(cs))
	r.check(rerr == io.EOF, "the server's application read end of file")
	cw, _, _ := r.rec.StateAt(true, 0, tcp.CloseWait)
	r.check(st == tcp.CloseWait && w.clk.Now().Sub(cw) > labCloseWaitHours,
		"the server's connection stays in CLOSE-WAIT for more than %v (%s)", labCloseWaitHours, st)
	silent := record.Where(pk[:n], func(p record.Pkt) bool { return p.T.After(quiet) })
	r.check(len(silent) == 0, "in all that time not one segment is sent (%d)", len(silent))
	r.checkLateFIN(pk[n:])
	r.check(w.cli.Stats().TCPResetsSent == 1, "the client's stack counts the reset it sent for no connection (%d)", w.cli.Stats().TCPResetsSent)
	return nil
}

// labTUNFinTimeout is the kernel's tcp_fin_timeout in the --tun lab's
// namespace.
const labTUNFinTimeout = time.Second

func labCloseWaitTUN(r *labRun) error {
	w, c, sc, done, err := r.tunConnected(tcp.Config{}, nil)
	defer done()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if out, err := w.ns.Command(ctx, "sysctl", "-qw", "net.ipv4.tcp_fin_timeout=1").CombinedOutput(); err != nil {
		return &labCmdError{"sysctl net.ipv4.tcp_fin_timeout=1", err, string(out)}
	}
	sc.SetDeadline(time.Now().Add(10 * time.Second))
	r.rec.WaitPkts(2*time.Second, record.AtLeast(3))
	r.say("the kernel's tcp_fin_timeout is set to %v in the namespace (Linux's default is 60 s)", labTUNFinTimeout)
	r.say("the client is done: its application closes the connection (close: it will neither send nor read) and sends FIN")
	c.Close()
	_, rerr := sc.Read(make([]byte, 10))
	r.say("the server's application reads end of file (%v) but never calls close (a bug: a leaked descriptor)", rerr)
	var fw2 []string
	waitfor.Within(time.Second, func() bool { fw2 = w.kernelTCP("fin-wait-2"); return len(fw2) > 0 })
	r.say("the kernel's socket: %s", strings.Join(fw2, "; "))
	gone := waitfor.Within(3*labTUNFinTimeout, func() bool { return len(w.kernelTCP("fin-wait-2")) == 0 })
	r.say("after tcp_fin_timeout the kernel's socket is gone")
	r.l.SetClientState("~CLOSED")
	cw, _, _ := r.rec.StateAt(true, 0, tcp.CloseWait)
	time.Sleep(time.Until(cw.Add(2 * time.Second))) // the story: the application forgets, for seconds here
	st := sc.State()
	r.say("%v later the server's connection is still %s: no timer ends CLOSE-WAIT, only the application's close", time.Since(cw).Round(time.Second), st)
	n := len(r.rec.Packets())
	r.say("at last the server's application closes: FIN")
	sc.Close()
	waitfor.Within(2*time.Second, func() bool { return sc.State() == tcp.Closed })
	pk := r.rec.Packets()
	r.check(len(fw2) == 1 && gone, "the kernel's socket goes to FIN-WAIT-2, and is gone after tcp_fin_timeout")
	r.check(rerr == io.EOF, "the server's application read end of file")
	r.check(st == tcp.CloseWait, "the server's connection is still in CLOSE-WAIT (%s)", st)
	r.checkLateFIN(pk[n:])
	return nil
}

// labCmdError is a command of a --tun lab that failed, with its output.
type labCmdError struct {
	what string
	err  error
	out  string
}

func (e *labCmdError) Error() string {
	return e.what + ": " + e.err.Error() + ": " + strings.TrimSpace(e.out)
}
