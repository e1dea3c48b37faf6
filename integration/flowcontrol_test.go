package integration

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
	"ustack/internal/waitfor"
)

// TestZeroWindowReopens guards against a bug it found: stack/tcp's
// advertise() rounded a kept window down to the window-scale unit, so the
// right edge receded segment by segment (RFC 9293 §3.8.6.2.2 says not to
// shrink), and at zero window checkSeq ignored the ACKs of segments at
// RCV.NXT (§3.10.7.4: "special allowance should be made to accept valid
// ACKs"): the connection stalled after a zero window.
// TestZeroWindowReopens: a kernel client writes to echo without reading, so
// the kernel's receive buffer fills, echo blocks, and ustack's receive
// window closes (zero window, persist probes both ways). Then the client
// reads: everything must come back intact. On the wire, ustack never
// shrinks its window: the right edge SEG.ACK + SEG.WND << scale it offers
// never moves left (RFC 9293 §3.8.6.2.2).
func TestZeroWindowReopens(t *testing.T) {
	requireRoot(t)
	ns := newNamespace(t)
	pcap := tempFile(t, "zerowindow.pcapng")
	startServe(t, ns, "--echo", echoPort, "--pcap", pcap)
	d := newDialer(t, ns, 1)
	c := d.mustDial(t, echoAddr())
	defer c.Close()
	kernel := netip.MustParseAddrPort(c.LocalAddr().String())
	c.SetDeadline(time.Now().Add(60 * time.Second))
	size := int64(16 * mib)

	sent := make(chan [32]byte, 1)
	werr := make(chan error, 1)
	go func() {
		rng := rand.NewChaCha8([32]byte{3})
		h := sha256.New()
		buf := make([]byte, 64<<10)
		for left := size; left > 0; left -= int64(len(buf)) {
			rng.Read(buf)
			h.Write(buf)
			if _, err := c.Write(buf); err != nil {
				werr <- fmt.Errorf("write at byte %d: %w", size-left, err)
				return
			}
		}
		sent <- [32]byte(h.Sum(nil))
		werr <- c.CloseWrite()
	}()

	// Wait, without reading, until ustack advertises a zero window.
	waitfor.Cond(t, 30*time.Second, "ustack to advertise a zero window while the client does not read",
		func() bool { return zeroWindowSeen(t, pcap, kernel) })
	t.Log("ustack's window is closed; the client reads now")
	c.SetDeadline(time.Now().Add(30 * time.Second)) // moving 16 MiB takes well under a second

	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil {
		t.Errorf("reading back after %d of %d bytes: %v", n, size, err)
	}
	if err := <-werr; err != nil {
		t.Errorf("writer: %v", err)
	}
	if n == size && err == nil {
		if want, got := <-sent, [32]byte(h.Sum(nil)); got != want {
			t.Errorf("echo returned other bytes: sha256 %x, want %x", got, want)
		}
	}

	pkts, rerr := readPcapng(pcap)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if p, prev, by, ok := windowShrinks(flow(pkts, kernel), netip.MustParseAddr(stackAddr)); ok {
		t.Errorf("ustack shrank its window: the right edge of\n\t%v\nis %d bytes left of that of\n\t%v", p, by, prev)
	}
}

// zeroWindowSeen reports whether the capture shows ustack advertising a
// zero window to kernel.
func zeroWindowSeen(t *testing.T, pcap string, kernel netip.AddrPort) bool {
	pkts, err := readPcapng(pcap)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		if p.dst == kernel && p.wnd == 0 && !p.has(flRST) {
			return true
		}
	}
	return false
}

// windowShrinks finds the first segment from the side at from whose right
// edge (ACK + scaled window) lies left of an earlier one's, that earlier
// segment and by how many bytes.
func windowShrinks(fl []packet, from netip.Addr) (shrunk, best packet, by uint32, ok bool) {
	scale := -1
	var peerSYN, ourSYN bool
	var edge uint32
	haveEdge := false
	for _, p := range fl {
		if p.has(flSYN) {
			if p.src.Addr() == from {
				ourSYN = p.ws >= 0
				scale = max(p.ws, 0)
			} else {
				peerSYN = p.ws >= 0
			}
			continue
		}
		if p.src.Addr() != from || !p.has(flACK) || p.has(flRST) {
			continue
		}
		s := 0
		if ourSYN && peerSYN {
			s = scale
		}
		e := p.ack + uint32(p.wnd)<<s
		if haveEdge && seqAfter(edge, e) {
			return p, best, edge - e, true
		}
		if !haveEdge || seqAfter(e, edge) {
			edge, best, haveEdge = e, p, true
		}
	}
	return packet{}, packet{}, 0, false
}
