package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ustack/tun"
)

// The addresses of a default `ustack serve`: the stack and the kernel side
// of its TUN device, inside the test's namespace.
const (
	stackAddr = "198.18.0.2"
	hostAddr  = "198.18.0.1"
	devName   = devPrefix + "0"
)

// newNamespace creates a network namespace for one test and deletes it when
// the test ends (after the cleanups registered later, such as stopping the
// ustack process, have run).
func newNamespace(t *testing.T) *tun.Namespace {
	t.Helper()
	ns, err := tun.NewNamespace("it_" + t.Name())
	if err != nil {
		t.Fatalf("creating a network namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := ns.Close(); err != nil {
			t.Errorf("deleting namespace %s: %v", ns.Name(), err)
		}
	})
	return ns
}

// lineLog collects a process's output line by line and lets tests wait for
// a line.
type lineLog struct {
	mu      sync.Mutex
	lines   []string
	partial []byte
	changed chan struct{} // closed and replaced whenever a line arrives or the log ends
	ended   bool
}

func newLineLog() *lineLog { return &lineLog{changed: make(chan struct{})} }

// Write implements io.Writer.
func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	added := false
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
		added = true
	}
	if added {
		close(l.changed)
		l.changed = make(chan struct{})
	}
	return len(p), nil
}

// end marks the log complete: no more lines will come.
func (l *lineLog) end() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.lines = append(l.lines, string(l.partial))
		l.partial = nil
	}
	l.ended = true
	close(l.changed)
	l.changed = make(chan struct{})
}

// snapshot returns the lines so far.
func (l *lineLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

func (l *lineLog) String() string { return strings.Join(l.snapshot(), "\n") }

// wait returns the first line at index from or later that match accepts,
// and its index. It gives up when the deadline passes or the log ends.
func (l *lineLog) wait(from int, timeout time.Duration, match func(string) bool) (int, string, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		l.mu.Lock()
		for ; from < len(l.lines); from++ {
			if match(l.lines[from]) {
				line := l.lines[from]
				l.mu.Unlock()
				return from, line, nil
			}
		}
		ended, changed := l.ended, l.changed
		l.mu.Unlock()
		if ended {
			return -1, "", errors.New("output ended")
		}
		select {
		case <-changed:
		case <-timer.C:
			return -1, "", fmt.Errorf("not within %v", timeout)
		}
	}
}

// waitCond waits until cond, evaluated whenever lines arrive, holds.
func (l *lineLog) waitCond(timeout time.Duration, cond func() bool) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		l.mu.Lock()
		ended, changed := l.ended, l.changed
		l.mu.Unlock()
		if cond() {
			return nil
		}
		if ended {
			return errors.New("output ended")
		}
		select {
		case <-changed:
		case <-timer.C:
			if cond() {
				return nil
			}
			return fmt.Errorf("not within %v", timeout)
		}
	}
}

// server is one `ustack serve` process running in a namespace.
type server struct {
	t      *testing.T
	ns     *tun.Namespace
	cmd    *exec.Cmd
	out    *lineLog // stdout: listening/ready lines and the trace
	errOut *lineLog
	done   chan struct{} // closed when the process has exited and its output is read
	err    error         // from cmd.Wait, valid after done

	stopOnce sync.Once
}

// startServe runs `ustack serve --tun uit0 --trace ARGS...` inside ns and
// waits for its "ready" line. The process is stopped (SIGTERM, then SIGKILL
// after a deadline) when the test ends; it must exit with status 0 and
// remove its TUN device.
func startServe(t *testing.T, ns *tun.Namespace, args ...string) *server {
	t.Helper()
	s := &server{t: t, ns: ns, out: newLineLog(), errOut: newLineLog(), done: make(chan struct{})}
	full := append([]string{"netns", "exec", ns.Name(), ustackBin, "serve", "--tun", devName, "--trace"}, args...)
	s.cmd = exec.Command("ip", full...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.errOut
	// Bound how long Wait waits for the output copies after the process
	// exits (nothing else should hold the pipes).
	s.cmd.WaitDelay = 5 * time.Second
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting ustack serve: %v", err)
	}
	t.Logf("started ustack serve %s (pid %d) in %s", strings.Join(args, " "), s.cmd.Process.Pid, ns.Name())
	go func() {
		s.err = s.cmd.Wait()
		s.out.end()
		s.errOut.end()
		close(s.done)
	}()
	t.Cleanup(s.stop)
	if _, _, err := s.out.wait(0, 30*time.Second, func(l string) bool { return strings.Contains(l, "ready") }); err != nil {
		s.stop()
		t.Fatalf("ustack serve printed no ready line: %v\nstdout:\n%s\nstderr:\n%s", err, s.out, s.errOut)
	}
	return s
}

// stop ends the process with SIGTERM (SIGKILL if it takes longer than 10 s),
// checks that it exited cleanly and removed its TUN device, and logs its
// output if the test failed. Only the process this server started is
// signalled.
func (s *server) stop() {
	s.stopOnce.Do(func() {
		t := s.t
		select {
		case <-s.done:
			t.Errorf("ustack serve exited before the test stopped it: %v\nstderr:\n%s", s.err, s.errOut)
		default:
			if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Errorf("SIGTERM to ustack (pid %d): %v", s.cmd.Process.Pid, err)
			}
			select {
			case <-s.done:
				if s.err != nil {
					t.Errorf("ustack serve did not exit cleanly on SIGTERM: %v\nstderr:\n%s", s.err, s.errOut)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("ustack serve (pid %d) still runs 10 s after SIGTERM: killing it", s.cmd.Process.Pid)
				s.cmd.Process.Kill()
				<-s.done
			}
		}
		if out, err := runIn(t, s.ns, 10*time.Second, "ip", "-o", "link", "show", "dev", devName); err == nil {
			t.Errorf("TUN device %s still exists after ustack exited:\n%s", devName, out)
		}
		if t.Failed() {
			t.Logf("ustack stdout (last lines):\n%s", tail(s.out.snapshot(), 60))
			t.Logf("ustack stderr:\n%s", tail(s.errOut.snapshot(), 60))
		}
	})
}

func tail(lines []string, n int) string {
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// runIn runs a program inside ns with a deadline and returns its combined
// output.
func runIn(t *testing.T, ns *tun.Namespace, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := ns.Command(ctx, name, args...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s %s: no result within %v: %w", name, strings.Join(args, " "), timeout, err)
	}
	return string(out), err
}

// exitCode is the exit status in err from exec, or -1.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err == nil {
		return 0
	}
	return -1
}

// dialer dials TCP connections from inside a namespace: sockets are made by
// goroutines whose threads stay in the namespace, and a socket belongs to
// the namespace it was made in for its whole life.
type dialer struct {
	reqs chan dialReq
}

type dialReq struct {
	addr string
	res  chan dialRes
}

type dialRes struct {
	c   *net.TCPConn
	err error
}

// newDialer starts workers goroutines inside ns that dial on request; they
// end with the test.
func newDialer(t *testing.T, ns *tun.Namespace, workers int) *dialer {
	d := &dialer{reqs: make(chan dialReq)}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := ns.Do(func() error {
				for r := range d.reqs {
					nd := net.Dialer{Timeout: 20 * time.Second}
					// The address's family chooses IPv4 or IPv6.
					c, err := nd.Dial("tcp", r.addr)
					if err != nil {
						r.res <- dialRes{err: err}
						continue
					}
					r.res <- dialRes{c: c.(*net.TCPConn)}
				}
				return nil
			})
			if err != nil {
				t.Errorf("dialer in %s: %v", ns.Name(), err)
			}
		}()
	}
	t.Cleanup(func() {
		close(d.reqs)
		wg.Wait()
	})
	return d
}

// dial connects to addr (host:port) from inside the namespace.
func (d *dialer) dial(addr string) (*net.TCPConn, error) {
	r := dialReq{addr: addr, res: make(chan dialRes, 1)}
	select {
	case d.reqs <- r:
	case <-time.After(30 * time.Second):
		return nil, errors.New("no dialer free within 30 s")
	}
	res := <-r.res
	return res.c, res.err
}

// mustDial dials or fails the test.
func (d *dialer) mustDial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := d.dial(addr)
	if err != nil {
		t.Fatalf("dialing %s from the kernel side: %v", addr, err)
	}
	return c
}

// listenIn listens on addr inside ns (IPv4 or IPv6, as the address is).
// The socket uses IP_FREEBIND (IPV6_FREEBIND), so the address need not
// exist yet (ustack assigns it when it creates its TUN).
func listenIn(t *testing.T, ns *tun.Namespace, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	err := ns.Do(func() error {
		lc := net.ListenConfig{Control: func(network, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				if network == "tcp6" {
					serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, unix.IPV6_FREEBIND, 1)
				} else {
					serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_FREEBIND, 1)
				}
			})
			return errors.Join(err, serr)
		}}
		var err error
		l, err = lc.Listen(context.Background(), "tcp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listening on %s in %s: %v", addr, ns.Name(), err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// traceEvent is one line of `ustack --trace`:
//
//	09:20:05.096113 trace 198.18.0.2:19<->198.18.0.1:38288 SYN-RECEIVED -> ESTABLISHED (rcv ACK)
type traceEvent struct {
	at       time.Duration // since midnight, as printed
	id       string        // local<->remote
	from, to string
	cause    string
}

var traceRE = regexp.MustCompile(`^(\d\d):(\d\d):(\d\d)\.(\d{6}) trace (\S+<->\S+) (\S+) -> (\S+) \((.*)\)$`)

func parseTrace(line string) (traceEvent, bool) {
	m := traceRE.FindStringSubmatch(line)
	if m == nil {
		return traceEvent{}, false
	}
	var n [4]int
	for i := range n {
		n[i], _ = strconv.Atoi(m[i+1]) // decimal, leading zeros and all
	}
	at := time.Duration(n[0])*time.Hour + time.Duration(n[1])*time.Minute + time.Duration(n[2])*time.Second + time.Duration(n[3])*time.Microsecond
	return traceEvent{at: at, id: m[5], from: m[6], to: m[7], cause: m[8]}, true
}

// since is the time from a to b, across midnight if need be.
func since(a, b traceEvent) time.Duration {
	d := b.at - a.at
	if d < -12*time.Hour {
		d += 24 * time.Hour
	}
	return d
}

// waitTrace waits for the trace line of connection id going to state to
// (from any state if from is ""), and returns it with its index.
func (s *server) waitTrace(from int, timeout time.Duration, id, fromState, toState string) (int, traceEvent, error) {
	var ev traceEvent
	i, _, err := s.out.wait(from, timeout, func(line string) bool {
		e, ok := parseTrace(line)
		if !ok || e.id != id || e.to != toState || (fromState != "" && e.from != fromState) {
			return false
		}
		ev = e
		return true
	})
	if err != nil {
		return -1, ev, fmt.Errorf("trace of %s shows no %s -> %s: %w", id, orAny(fromState), toState, err)
	}
	return i, ev, nil
}

func orAny(s string) string {
	if s == "" {
		return "*"
	}
	return s
}

// traceOf lists the trace events of one connection so far.
func (s *server) traceOf(id string) []traceEvent {
	var evs []traceEvent
	for _, line := range s.out.snapshot() {
		if e, ok := parseTrace(line); ok && e.id == id {
			evs = append(evs, e)
		}
	}
	return evs
}

// connID is how the trace names the stack's side of c, a kernel-side
// connection: local<->remote as ustack sees it.
func connID(c net.Conn) string {
	return fmt.Sprintf("%v<->%v", c.RemoteAddr(), c.LocalAddr())
}

// tempFile is a path in the test's own temporary directory.
func tempFile(t *testing.T, name string) string {
	return filepath.Join(t.TempDir(), name)
}
