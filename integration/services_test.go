package integration

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// The services' ports in these tests.
const (
	echoPort    = "7"
	discardPort = "9"
	sourcePort  = "19"
	httpPort    = "80"
)

func echoAddr() string    { return net.JoinHostPort(stackAddr, echoPort) }
func discardAddr() string { return net.JoinHostPort(stackAddr, discardPort) }
func sourceAddr() string  { return net.JoinHostPort(stackAddr, sourcePort) }

// allServices are the flags for every plain service.
var allServices = []string{"--echo", echoPort, "--discard", discardPort, "--source", sourcePort, "--http", httpPort}

// TestPing: ICMP echo requests to the stack's address are answered, small
// and near the MTU.
func TestPing(t *testing.T) {
	requireRoot(t)
	requireTool(t, "ping")
	ns := newNamespace(t)
	startServe(t, ns, "--echo", echoPort)
	for _, size := range []string{"56", "1472"} {
		out, err := runIn(t, ns, 20*time.Second, "ping", "-n", "-c", "3", "-i", "0.2", "-W", "5", "-s", size, stackAddr)
		if err != nil || !strings.Contains(out, "3 packets transmitted, 3 received") {
			t.Errorf("ping -s %s %s: %v\n%s", size, stackAddr, err, out)
		}
	}
}

// TestServices: kernel clients get what RFC 862 (echo), RFC 863 (discard)
// and the source service promise, and each service closes on EOF.
func TestServices(t *testing.T) {
	requireRoot(t)
	ns := newNamespace(t)
	startServe(t, ns, allServices...)
	d := newDialer(t, ns, 1)

	t.Run("echo", func(t *testing.T) {
		c := d.mustDial(t, echoAddr())
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		msg := []byte("hello, ustack\n")
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("echo returned %q, %v; want %q", got, err, msg)
		}
		c.CloseWrite()
		if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
			t.Fatalf("after our FIN: %q, %v; want EOF", rest, err)
		}
	})
	t.Run("discard", func(t *testing.T) {
		c := d.mustDial(t, discardAddr())
		defer c.Close()
		if _, err := upload(c, 1*mib, 20*time.Second); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("source", func(t *testing.T) {
		c := d.mustDial(t, sourceAddr())
		defer c.Close()
		if _, err := readSource(c, 1*mib, 20*time.Second); err != nil {
			t.Fatal(err)
		}
	})
}

// echoInFlight bounds the bytes the echo transfers have written but not
// read back (see echoRoundTrip).
const echoInFlight = 512 << 10

// TestBulkTransfers moves 256 MiB (32 MiB with -short) each way and checks
// every byte: up and back down through echo (SHA-256 of what was sent equals
// that of what returned), down from source (each byte checked against the
// pattern), and up to discard (the service's FIN after ours shows it read
// to the end).
func TestBulkTransfers(t *testing.T) {
	requireRoot(t)
	ns := newNamespace(t)
	startServe(t, ns, allServices...)
	d := newDialer(t, ns, 1)
	size := bulkSize()
	const timeout = 90 * time.Second

	t.Run("echo", func(t *testing.T) {
		c := d.mustDial(t, echoAddr())
		defer c.Close()
		res, err := echoRoundTrip(c, size, 1, timeout, echoInFlight)
		if err != nil {
			t.Fatalf("%d MiB through echo: %v", size/mib, err)
		}
		t.Logf("echo, up and back: %v", res)
	})
	t.Run("source", func(t *testing.T) {
		c := d.mustDial(t, sourceAddr())
		defer c.Close()
		res, err := readSource(c, size, timeout)
		if err != nil {
			t.Fatalf("%d MiB from source: %v", size/mib, err)
		}
		t.Logf("source, down: %v", res)
	})
	t.Run("discard", func(t *testing.T) {
		c := d.mustDial(t, discardAddr())
		defer c.Close()
		res, err := upload(c, size, timeout)
		if err != nil {
			t.Fatalf("%d MiB to discard: %v", size/mib, err)
		}
		t.Logf("discard, up: %v", res)
	})
}

// exchange sends a small message naming i through an echo connection and
// checks it returns, then closes gracefully: our FIN, the stack's FIN.
func exchange(c *net.TCPConn, i int) error {
	c.SetDeadline(time.Now().Add(60 * time.Second))
	msg := make([]byte, 64+i%512)
	for j := range msg {
		msg[j] = byte(i + j)
	}
	binary.BigEndian.PutUint32(msg, uint32(i))
	if _, err := c.Write(msg); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo returned other bytes")
	}
	if err := c.CloseWrite(); err != nil {
		return err
	}
	if n, err := io.Copy(io.Discard, c); err != nil || n != 0 {
		return fmt.Errorf("after our FIN: %d bytes, %v; want EOF", n, err)
	}
	return nil
}

// TestSequentialConnections: 1,000 connections to echo, one after the
// other, each exchanging data and closing.
func TestSequentialConnections(t *testing.T) {
	requireRoot(t)
	ns := newNamespace(t)
	s := startServe(t, ns, "--echo", echoPort)
	d := newDialer(t, ns, 1)
	const n = 1000
	start := time.Now()
	for i := range n {
		c, err := d.dial(echoAddr())
		if err != nil {
			t.Fatalf("connection %d: dial: %v", i, err)
		}
		err = exchange(c, i)
		c.Close()
		if err != nil {
			t.Fatalf("connection %d (%s): %v", i, connID(c), err)
		}
	}
	t.Logf("%d sequential connections in %v", n, time.Since(start).Round(time.Millisecond))
	// Every one of them went through the full life on the stack's side:
	// the kernel closed first, so the stack ends each in LAST-ACK -> CLOSED.
	if err := s.out.waitCond(20*time.Second, func() bool { return countTrace(s, "LAST-ACK", "CLOSED") >= n }); err != nil {
		t.Errorf("trace shows %d LAST-ACK -> CLOSED, want %d", countTrace(s, "LAST-ACK", "CLOSED"), n)
	}
}

// countTrace counts the trace lines from -> to.
func countTrace(s *server, from, to string) int {
	n := 0
	for _, line := range s.out.snapshot() {
		if e, ok := parseTrace(line); ok && e.from == from && e.to == to {
			n++
		}
	}
	return n
}

// TestConcurrentConnections: 500 connections to echo open at once, then
// each exchanges data concurrently and closes.
func TestConcurrentConnections(t *testing.T) {
	requireRoot(t)
	ns := newNamespace(t)
	s := startServe(t, ns, "--echo", echoPort)
	d := newDialer(t, ns, 8)
	const n = 500
	conns := make([]*net.TCPConn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Go(func() { conns[i], errs[i] = d.dial(echoAddr()) })
	}
	wg.Wait()
	for i, c := range conns {
		if c != nil {
			defer c.Close()
		}
		if errs[i] != nil {
			t.Fatalf("connection %d: dial: %v", i, errs[i])
		}
	}
	t.Logf("%d connections open after %v", n, time.Since(start).Round(time.Millisecond))
	// All are open now; talk on all of them at once.
	for i, c := range conns {
		wg.Go(func() { errs[i] = exchange(c, i) })
	}
	wg.Wait()
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			if failed <= 5 {
				t.Errorf("connection %d (%s): %v", i, connID(conns[i]), err)
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d connections failed", failed, n)
	}
	t.Logf("%d concurrent connections done in %v", n, time.Since(start).Round(time.Millisecond))
	if got := countTrace(s, "SYN-RECEIVED", "ESTABLISHED"); got != n {
		t.Errorf("trace shows %d SYN-RECEIVED -> ESTABLISHED, want %d", got, n)
	}
}

// TestImpairedTransfer: with 5% loss, 2% reordering and 1% duplication on
// the stack's link (both directions), 64 MiB (16 MiB with -short) each way
// through echo arrive intact.
//
// The ustack-to-kernel direction is slow (about 1 MB/s, against 30 MB/s the
// other way): ustack recovers most of its losses by retransmission timeout,
// since after an RTO it sets RecoveryPoint to SND.MAX and then never fast-
// retransmits a loss below it, and it does not detect lost retransmissions.
// Hence the generous deadline.
func TestImpairedTransfer(t *testing.T) {
	requireRoot(t)
	ns := newNamespace(t)
	startServe(t, ns, "--echo", echoPort, "--impair", "loss=0.05,reorder=0.02,dup=0.01")
	d := newDialer(t, ns, 1)
	size := int64(64 * mib)
	if testing.Short() {
		size = 16 * mib
	}
	c := d.mustDial(t, echoAddr())
	defer c.Close()
	res, err := echoRoundTrip(c, size, 2, 150*time.Second, echoInFlight)
	if err != nil {
		t.Fatalf("%d MiB through echo over an impaired link: %v", size/mib, err)
	}
	t.Logf("impaired echo, each way: %v", res)
}
