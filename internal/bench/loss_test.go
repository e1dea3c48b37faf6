package bench

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A /proc/net/netstat and /proc/net/snmp excerpt in the kernel's layout:
// a line of names, then a line of values, per group.
const (
	sampleNetstat = `TcpExt: SyncookiesSent TCPTimeouts TCPLossProbes TCPSackRecovery
TcpExt: 0 7 3 12
IpExt: InNoRoutes TCPTimeouts
IpExt: 0 99
`
	sampleSNMP = `Ip: Forwarding DefaultTTL
Ip: 1 64
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens OutSegs RetransSegs
Tcp: 1 200 120000 -1 4 1000 25
`
)

func TestReadMIB(t *testing.T) {
	dir := t.TempDir()
	netstat, snmp := filepath.Join(dir, "netstat"), filepath.Join(dir, "snmp")
	os.WriteFile(netstat, []byte(sampleNetstat), 0o644)
	os.WriteFile(snmp, []byte(sampleSNMP), 0o644)
	want := map[string]bool{"TCPTimeouts": true, "TCPSackRecovery": true, "OutSegs": true, "RetransSegs": true, "MaxConn": true}
	got := map[string]uint64{}
	if err := readMIB(netstat, "TcpExt:", want, got); err != nil {
		t.Fatal(err)
	}
	if err := readMIB(snmp, "Tcp:", want, got); err != nil {
		t.Fatal(err)
	}
	// TCPTimeouts comes from TcpExt, not from the IpExt line with the
	// same name; the negative MaxConn parses.
	for name, v := range map[string]uint64{"TCPTimeouts": 7, "TCPSackRecovery": 12, "OutSegs": 1000, "RetransSegs": 25, "MaxConn": ^uint64(0)} {
		if got[name] != v {
			t.Errorf("%s = %d, want %d (all: %v)", name, got[name], v, got)
		}
	}
	if _, ok := got["TCPLossProbes"]; ok {
		t.Errorf("read a counter not asked for: %v", got)
	}
}

// TestLossCells checks the per-MB medians and that a row shows only for
// the stacks whose family has the counter.
func TestLossCells(t *testing.T) {
	b := &bench{lossCounts: map[benchKey][]lossSample{}}
	const m = "goodput_loss1_gbps"
	b.lossCounts[benchKey{stackKernel, m}] = []lossSample{
		{kindKernel, map[string]float64{"TCPTimeouts": 1, "RetransSegs": 10}},
		{kindKernel, map[string]float64{"TCPTimeouts": 3, "RetransSegs": 30}},
		{kindKernel, map[string]float64{"TCPTimeouts": 2, "RetransSegs": 20}},
	}
	b.lossCounts[benchKey{stackUstack, m}] = []lossSample{{kindUstack, map[string]float64{"Timeouts": 5, "Retransmits": 7, "RACKLost": 4}}}
	byLabel := map[string]lossRow{}
	for _, r := range lossRows {
		byLabel[r.label] = r
	}
	rto, retrans, rack := byLabel["RTO expiries"], byLabel["segments retransmitted"], byLabel["segments marked lost by RACK"]
	for _, c := range []struct {
		stack string
		row   lossRow
		v     float64
		ok    bool
	}{
		{stackKernel, rto, 2, true}, {stackKernel, retrans, 20, true}, {stackKernel, rack, 0, false},
		{stackUstack, rto, 5, true}, {stackUstack, rack, 4, true}, {stackGVisor, rto, 0, false},
	} {
		if v, ok := b.lossCell(c.stack, m, c.row); v != c.v || ok != c.ok {
			t.Errorf("%s %q: %v %v, want %v %v", c.stack, c.row.label, v, ok, c.v, c.ok)
		}
	}
	if got := b.lossMetrics(); len(got) != 1 || got[0] != m {
		t.Errorf("lossMetrics = %v", got)
	}
	if rows := b.lossRowsFor(m); len(rows) != 3 {
		t.Errorf("rows with a value: %d, want 3 (RTO, RACK, retransmitted): %v", len(rows), rows)
	}
}

// loopbackServer runs handle on every connection to a loopback listener.
func loopbackServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); handle(c) }()
		}
	}()
	return l.Addr().String()
}

func TestClientEchoBlocking(t *testing.T) {
	addr := loopbackServer(t, func(c net.Conn) { io.Copy(c, c) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, cpu := range []int{-1, 0} {
		r, err := clientEcho(ctx, ClientConfig{Addr: addr, Count: 300, Warmup: 30, CPU: cpu})
		if err != nil {
			t.Fatalf("cpu %d: %v", cpu, err)
		}
		if r.Count != 300 || len(r.Samples) != 300 {
			t.Fatalf("cpu %d: %d samples, want 300", cpu, len(r.Samples))
		}
		for _, s := range r.Samples {
			if s <= 0 {
				t.Fatalf("cpu %d: a round trip of %d ns", cpu, s)
			}
		}
	}
	if _, err := clientEcho(ctx, ClientConfig{Addr: "localhost:7", Count: 1}); err == nil {
		t.Error("a host name is not IPv4:PORT, yet no error")
	}
}

// TestUploadFor: the timed upload counts only what the server's TCP has
// acknowledged, not what waits in the client's send queue, and resets the
// connection at the end. The server reads nothing until the client is
// done, with a 64 KiB receive buffer: at most that much (doubled by the
// kernel for its bookkeeping) can be acknowledged.
func TestUploadFor(t *testing.T) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 64<<10) })
		return serr
	}}
	l, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	clientDone := make(chan struct{})
	readErr := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			readErr <- err
			return
		}
		defer c.Close()
		<-clientDone
		_, err = io.Copy(io.Discard, c)
		readErr <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := clientUpload(ctx, ClientConfig{Addr: l.Addr().String(), Duration: 300 * time.Millisecond})
	close(clientDone)
	if err != nil {
		t.Fatal(err)
	}
	if r.Bytes <= 0 || r.Bytes > 128<<10 || r.Seconds < 0.3 {
		t.Errorf("%d bytes acknowledged in %.3f s; want 1 to %d in at least 0.3 s", r.Bytes, r.Seconds, 128<<10)
	}
	select {
	case err := <-readErr:
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("the server's read ended with %v, want a reset", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not see the connection end")
	}
}

// TestPinProcess pins every thread of the test process to one CPU and
// gives the former set back.
func TestPinProcess(t *testing.T) {
	first, second, err := twoCPUs()
	if err != nil {
		t.Skip(err)
	}
	if first == second {
		t.Fatalf("twoCPUs = %d, %d", first, second)
	}
	var before unix.CPUSet
	unix.SchedGetaffinity(0, &before)
	procs := runtime.GOMAXPROCS(0)
	restore, err := pinProcess(second)
	if err != nil {
		t.Fatal(err)
	}
	if n := runtime.GOMAXPROCS(0); n != 1 {
		t.Errorf("GOMAXPROCS %d while pinned, want 1", n)
	}
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &set); err != nil {
			continue // the thread ended
		}
		if set.Count() != 1 || !set.IsSet(second) {
			t.Errorf("thread %d may run on %d CPUs after pinning to %d", tid, set.Count(), second)
		}
	}
	restore()
	var after unix.CPUSet
	unix.SchedGetaffinity(0, &after)
	if n := runtime.GOMAXPROCS(0); n != procs {
		t.Errorf("GOMAXPROCS %d after restore, want %d", n, procs)
	}
	if after != before {
		t.Errorf("after restore: %v CPUs, before %v", after.Count(), before.Count())
	}
}
