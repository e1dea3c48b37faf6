package integration

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
	"ustack/internal/waitfor"
)

// TestTimeWaitLasts2MSL: when ustack closes first (net/http closes a
// "Connection: close" connection after the response), the connection goes
// through FIN-WAIT to TIME-WAIT and stays there 2*MSL (--msl 1s: 2 s), as
// the trace's timestamps show (RFC 9293 §3.10.7.4 eighth step, §3.6).
func TestTimeWaitLasts2MSL(t *testing.T) {
	requireRoot(t)
	ns := newNamespace(t)
	const msl = time.Second
	s := startServe(t, ns, "--http", httpPort, "--msl", msl.String())
	d := newDialer(t, ns, 1)
	c := d.mustDial(t, net.JoinHostPort(stackAddr, httpPort))
	defer c.Close()
	id := connID(c)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+stackAddr+"\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := io.ReadAll(c) // to the stack's FIN
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	if !bytes.HasPrefix(resp, []byte("HTTP/1.1 200 OK")) || !bytes.Contains(resp, []byte("ustack")) {
		t.Fatalf("response: %.200q", resp)
	}
	c.Close() // our FIN, after the stack's

	i, fin, err := s.waitTrace(0, 20*time.Second, id, "ESTABLISHED", "FIN-WAIT-1")
	if err != nil {
		t.Fatalf("ustack did not close first: %v\ntrace: %v", err, s.traceOf(id))
	}
	i, tw, err := s.waitTrace(i, 20*time.Second, id, "", "TIME-WAIT")
	if err != nil {
		t.Fatal(err)
	}
	if tw.from != "FIN-WAIT-2" && tw.from != "CLOSING" {
		t.Errorf("entered TIME-WAIT from %s, want FIN-WAIT-2 or CLOSING", tw.from)
	}
	_, closed, err := s.waitTrace(i, 2*msl+20*time.Second, id, "TIME-WAIT", "CLOSED")
	if err != nil {
		t.Fatal(err)
	}
	got := since(tw, closed)
	t.Logf("%s: FIN-WAIT-1, then TIME-WAIT %v later, then CLOSED (%s) after %v in TIME-WAIT",
		id, since(fin, tw), closed.cause, got)
	const tolerance = 300 * time.Millisecond
	if got < 2*msl-tolerance || got > 2*msl+tolerance {
		t.Errorf("TIME-WAIT lasted %v, want 2*MSL = %v ± %v", got, 2*msl, tolerance)
	}
	if !strings.Contains(closed.cause, "timer") {
		t.Errorf("TIME-WAIT ended by %q, want the 2*MSL timer", closed.cause)
	}
}

// keepaliveArgs: probe after 1 s idle, every 500 ms, give up after 3.
var keepaliveArgs = []string{"--keepalive-idle", "1s", "--keepalive-interval", "500ms", "--keepalive-count", "3"}

// TestKeepaliveAnswered: on an idle connection ustack sends keepalive
// probes (RFC 1122 §4.2.3.6: SEG.SEQ = SND.NXT-1, no data), the kernel
// answers each, and the connection lives on and still echoes.
func TestKeepaliveAnswered(t *testing.T) {
	requireRoot(t)
	ns := newNamespace(t)
	pcap := tempFile(t, "keepalive.pcapng")
	s := startServe(t, ns, append([]string{"--echo", echoPort, "--pcap", pcap}, keepaliveArgs...)...)
	d := newDialer(t, ns, 1)
	c := d.mustDial(t, echoAddr())
	defer c.Close()
	id := connID(c)
	kernel := netip.MustParseAddrPort(c.LocalAddr().String())
	stack := netip.MustParseAddr(stackAddr)
	echoOnce(t, c, "before the idle time")

	// Idle until the capture shows four answered probes (about 4-5 s with
	// a 1 s idle time), at most 30 s.
	const want = 4
	var probes []packet
	var answered []bool
	n := 0
	waitfor.Condf(t, 30*time.Second, func() string {
		return fmt.Sprintf("%d answered keepalive probes from ustack in the capture (it shows %d probes, %d answered)", want, len(probes), n)
	}, func() bool {
		probes, answered = keepaliveProbes(flow(mustReadPcapng(t, pcap), kernel), stack)
		n = 0
		for _, a := range answered {
			if a {
				n++
			}
		}
		return n >= want
	})
	for i, p := range probes {
		t.Logf("probe %d: %v (answered %v)", i+1, p, answered[i])
	}
	// The first probe comes after the idle time (1 s after the echo's
	// reply, the last data), the others not in a burst.
	var lastData packet
	for _, p := range flow(mustReadPcapng(t, pcap), kernel) {
		if p.payload > 0 && p.n < probes[0].n {
			lastData = p
		}
	}
	if idle := probes[0].at.Sub(lastData.at); idle < 900*time.Millisecond {
		t.Errorf("first probe %v after the last data, want the 1 s idle time", idle)
	}
	for i := 1; i < len(probes); i++ {
		if gap := probes[i].at.Sub(probes[i-1].at); gap < 400*time.Millisecond {
			t.Errorf("probes %d and %d only %v apart", i, i+1, gap)
		}
	}
	echoOnce(t, c, "after the idle time")
	if evs := s.traceOf(id); len(evs) != 2 || evs[len(evs)-1].to != "ESTABLISHED" {
		t.Errorf("trace of %s: %v; want only the handshake", id, evs)
	}
}

func echoOnce(t *testing.T, c *net.TCPConn, when string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := []byte("are you there? " + when)
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("echo %s: %v", when, err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo %s: %q, %v", when, got, err)
	}
	c.SetDeadline(time.Time{})
}

// TestKeepaliveDeadPeer: when the kernel side stops answering (nft drops
// everything from the stack), ustack sends keepalive-count probes an
// interval apart, then aborts the connection with a RST: the trace shows
// ESTABLISHED -> CLOSED by the keepalive timer about idle + count*interval
// after the last segment from the peer.
func TestKeepaliveDeadPeer(t *testing.T) {
	requireRoot(t)
	requireTool(t, "nft")
	ns := newNamespace(t)
	pcap := tempFile(t, "keepalive.pcapng")
	s := startServe(t, ns, append([]string{"--echo", echoPort, "--pcap", pcap}, keepaliveArgs...)...)
	d := newDialer(t, ns, 1)
	c := d.mustDial(t, echoAddr())
	defer c.Close()
	id := connID(c)
	kernel := netip.MustParseAddrPort(c.LocalAddr().String())
	stack := netip.MustParseAddr(stackAddr)
	echoOnce(t, c, "before the peer vanishes")

	// The peer vanishes: the kernel drops whatever the stack sends.
	rules := fmt.Sprintf("table ip ustack_it {\n chain in {\n  type filter hook input priority 0; policy accept;\n  ip saddr %s tcp sport %s drop\n }\n}\n", stackAddr, echoPort)
	if out, err := runIn(t, ns, 20*time.Second, "sh", "-c", "printf '%s' \"$1\" | nft -f -", "sh", rules); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}

	_, ev, err := s.waitTrace(0, 30*time.Second, id, "ESTABLISHED", "CLOSED")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ev.cause, "keepalive") {
		t.Errorf("connection closed by %q, want the keepalive timer", ev.cause)
	}
	s.stop() // complete the capture

	pkts, err := readPcapng(pcap)
	if err != nil {
		t.Fatal(err)
	}
	fl := flow(pkts, kernel)
	// What the stack sent after the last segment from the peer.
	last := -1
	for i, p := range fl {
		if p.src == kernel {
			last = i
		}
	}
	if last < 0 {
		t.Fatal("no segment from the kernel in the capture")
	}
	after := fl[last+1:]
	probes, _ := keepaliveProbes(fl, stack)
	var unanswered []packet
	for _, p := range probes {
		if p.n > fl[last].n {
			unanswered = append(unanswered, p)
		}
	}
	var rst *packet
	for i, p := range after {
		if p.src.Addr() == stack && p.has(flRST) {
			rst = &after[i]
		}
	}
	for _, p := range after {
		t.Logf("after the peer's last segment: %v", p)
	}
	if len(unanswered) != 3 {
		t.Errorf("%d unanswered probes, want --keepalive-count 3", len(unanswered))
	}
	if rst == nil {
		t.Fatalf("no RST from ustack after the unanswered probes")
	}
	for i := 1; i < len(unanswered); i++ {
		if gap := unanswered[i].at.Sub(unanswered[i-1].at); gap < 400*time.Millisecond || gap > 1500*time.Millisecond {
			t.Errorf("unanswered probes %d and %d are %v apart, want the 500 ms interval", i, i+1, gap)
		}
	}
	// Abort: idle (1 s) + count (3) * interval (500 ms) after the peer's
	// last segment, give or take scheduling.
	if took := rst.at.Sub(fl[last].at); took < 2400*time.Millisecond || took > 4*time.Second {
		t.Errorf("aborted %v after the peer's last segment, want about 2.5 s", took)
	}
}
