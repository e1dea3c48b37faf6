package integration

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// packet is one IPv4/TCP packet of a capture, as much as the tests need.
type packet struct {
	n        int // frame number, from 1, as tshark counts
	at       time.Time
	src, dst netip.AddrPort
	seq, ack uint32
	flags    uint8
	wnd      uint16
	ws       int // window scale option (SYN only), -1 if absent
	payload  int
}

// TCP flags.
const (
	flFIN = 1 << 0
	flSYN = 1 << 1
	flRST = 1 << 2
	flPSH = 1 << 3
	flACK = 1 << 4
)

func (p packet) has(f uint8) bool { return p.flags&f != 0 }

func (p packet) String() string {
	return fmt.Sprintf("#%d %v %v -> %v flags %#02x seq %d ack %d win %d len %d", p.n, p.at.Format("15:04:05.000000"), p.src, p.dst, p.flags, p.seq, p.ack, p.wnd, p.payload)
}

// readPcapng reads the TCP/IPv4 packets of a little-endian pcapng file as
// link.Tap writes it (one section, LINKTYPE_RAW or LINKTYPE_IPV4). A file
// still being written may end in a partial block: what precedes it is
// returned without error. Other packets are counted but skipped.
func readPcapng(path string) ([]packet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var pkts []packet
	tsUnit := time.Microsecond // pcapng default, if_tsresol absent
	frame := 0
	for off := 0; off+12 <= len(b); {
		typ := binary.LittleEndian.Uint32(b[off:])
		blen := int(binary.LittleEndian.Uint32(b[off+4:]))
		if blen < 12 || blen%4 != 0 {
			return pkts, fmt.Errorf("block at %d: bad length %d", off, blen)
		}
		if off+blen > len(b) {
			break // partial block at the end of a file being written
		}
		body := b[off+8 : off+blen-4]
		switch typ {
		case 0x0A0D0D0A: // Section Header Block
			if len(body) < 4 || binary.LittleEndian.Uint32(body) != 0x1A2B3C4D {
				return nil, errors.New("not a little-endian pcapng section")
			}
		case 1: // Interface Description Block
			if len(body) < 8 {
				return nil, errors.New("short interface description block")
			}
			for o := body[8:]; len(o) >= 4; {
				code, l := binary.LittleEndian.Uint16(o), int(binary.LittleEndian.Uint16(o[2:]))
				if code == 0 || 4+l > len(o) {
					break
				}
				if code == 9 && l == 1 && o[4]&0x80 == 0 { // if_tsresol, power of 10
					tsUnit = time.Duration(1)
					for range 9 - int(o[4]) {
						tsUnit *= 10
					}
				}
				o = o[4+(l+3)&^3:]
			}
		case 6: // Enhanced Packet Block
			frame++
			if len(body) < 20 {
				return pkts, fmt.Errorf("frame %d: short block", frame)
			}
			ts := uint64(binary.LittleEndian.Uint32(body[4:]))<<32 | uint64(binary.LittleEndian.Uint32(body[8:]))
			caplen := int(binary.LittleEndian.Uint32(body[12:]))
			if 20+caplen > len(body) {
				return pkts, fmt.Errorf("frame %d: captured length %d beyond the block", frame, caplen)
			}
			if p, ok := parseIPv4TCP(body[20 : 20+caplen]); ok {
				p.n = frame
				p.at = time.Unix(0, int64(ts)*int64(tsUnit))
				pkts = append(pkts, p)
			}
		}
		off += blen
	}
	return pkts, nil
}

func mustReadPcapng(t *testing.T, path string) []packet {
	t.Helper()
	pkts, err := readPcapng(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return pkts
}

func parseIPv4TCP(b []byte) (packet, bool) {
	var p packet
	if len(b) < 20 || b[0]>>4 != 4 || b[9] != 6 {
		return p, false
	}
	ihl := int(b[0]&0xf) * 4
	total := int(binary.BigEndian.Uint16(b[2:]))
	if ihl < 20 || total > len(b) || total < ihl+20 {
		return p, false
	}
	src := netip.AddrFrom4([4]byte(b[12:16]))
	dst := netip.AddrFrom4([4]byte(b[16:20]))
	t := b[ihl:total]
	doff := int(t[12]>>4) * 4
	if doff < 20 || doff > len(t) {
		return p, false
	}
	p.src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(t))
	p.dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(t[2:]))
	p.seq = binary.BigEndian.Uint32(t[4:])
	p.ack = binary.BigEndian.Uint32(t[8:])
	p.flags = t[13]
	p.wnd = binary.BigEndian.Uint16(t[14:])
	p.payload = len(t) - doff
	p.ws = -1
	for o := t[20:doff]; len(o) > 0; {
		switch o[0] {
		case 0:
			o = nil
			continue
		case 1:
			o = o[1:]
			continue
		}
		if len(o) < 2 || int(o[1]) < 2 || int(o[1]) > len(o) {
			break
		}
		if o[0] == 3 && o[1] == 3 {
			p.ws = int(o[2])
		}
		o = o[o[1]:]
	}
	return p, true
}

// flow selects the packets of one connection, given as the kernel side's
// address (the stack's side is the other end).
func flow(pkts []packet, kernel netip.AddrPort) []packet {
	var out []packet
	for _, p := range pkts {
		if p.src == kernel || p.dst == kernel {
			out = append(out, p)
		}
	}
	return out
}

// seqAfter reports a > b in sequence space.
func seqAfter(a, b uint32) bool { return int32(a-b) > 0 }

// keepaliveProbes finds the keepalive probes that the side at from sent in
// a flow: segments without payload, SYN, FIN or RST whose sequence number
// is one below the highest sequence number that side had sent (RFC 1122
// §4.2.3.6, SEG.SEQ = SND.NXT-1). answered tells whether the other side
// acknowledged the probe (ACK = probe's SEQ+1) before the next probe.
//
// ustack's tap records an outgoing packet after the device write returns,
// and the kernel may answer within that write, so the answer can precede
// the probe in the file by microseconds: a peer segment up to replySlack
// before the probe counts as its answer too.
func keepaliveProbes(fl []packet, from netip.Addr) (probes []packet, answered []bool) {
	const replySlack = 5 * time.Millisecond
	var nxt uint32
	started := false
	var lastAnswer packet // the peer's latest segment not yet matched to a probe
	for _, p := range fl {
		if p.src.Addr() != from {
			if len(probes) > 0 && !answered[len(answered)-1] && p.ack == probes[len(probes)-1].seq+1 {
				answered[len(answered)-1] = true
				continue
			}
			lastAnswer = p
			continue
		}
		end := p.seq + uint32(p.payload)
		if p.has(flSYN) || p.has(flFIN) {
			end++
		}
		if started && p.payload == 0 && p.flags == flACK && p.seq == nxt-1 {
			early := lastAnswer.n != 0 && lastAnswer.ack == p.seq+1 && p.at.Sub(lastAnswer.at) <= replySlack
			probes = append(probes, p)
			answered = append(answered, early)
			lastAnswer = packet{}
			continue
		}
		if !started || seqAfter(end, nxt) {
			nxt, started = end, true
		}
	}
	return probes, answered
}

// TestPcap: --pcap writes a pcapng file that tshark reads without a
// malformed packet, and that shows the three-way handshake of a curl to
// the HTTP service and of a kernel client of echo.
func TestPcap(t *testing.T) {
	requireRoot(t)
	requireTool(t, "tshark", "curl")
	ns := newNamespace(t)
	pcap := tempFile(t, "serve.pcapng")
	s := startServe(t, ns, "--echo", echoPort, "--http", httpPort, "--pcap", pcap)
	out, err := runIn(t, ns, 20*time.Second, "curl", "-sS", "--max-time", "10", "http://"+stackAddr+"/")
	if err != nil || !strings.Contains(out, "ustack") {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	d := newDialer(t, ns, 1)
	c := d.mustDial(t, echoAddr())
	if err := exchange(c, 7); err != nil {
		t.Fatalf("echo: %v", err)
	}
	c.Close()
	s.stop() // the capture is complete once ustack has exited

	// tshark -V dissects every field; no packet may be malformed, no
	// checksum wrong.
	out, err = runTshark(t, "-r", pcap, "-V", "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE")
	if err != nil {
		t.Fatalf("tshark -r %s -V: %v\n%s", pcap, err, tail(strings.Split(out, "\n"), 30))
	}
	if strings.Contains(out, "Malformed") {
		t.Errorf("tshark finds malformed packets:\n%s", grepContext(out, "Malformed", 30))
	}
	if strings.Contains(out, "Status: Bad]") {
		t.Errorf("tshark finds bad checksums:\n%s", grepContext(out, "Status: Bad]", 30))
	}

	// The handshake of each connection: SYN, SYN+ACK, then the ACK that
	// acknowledges the SYN+ACK (relative ack 1, no SYN).
	out, err = runTshark(t, "-r", pcap, "-Y", "tcp.flags.syn==1", "-T", "fields", "-e", "tcp.stream", "-e", "tcp.flags")
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	syns := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 {
			syns[f[0]] = append(syns[f[0]], f[1])
		}
	}
	if len(syns) != 2 {
		t.Fatalf("capture shows SYNs of %d streams, want 2 (curl, echo):\n%s", len(syns), out)
	}
	for stream, flags := range syns {
		if strings.Join(flags, " ") != "0x0002 0x0012" {
			t.Errorf("stream %s: SYN segments with flags %v, want [0x0002 0x0012] (SYN, SYN+ACK)", stream, flags)
		}
		out, err := runTshark(t, "-r", pcap, "-Y", "tcp.stream=="+stream+" && tcp.flags==0x0010 && tcp.seq==1 && tcp.ack==1", "-T", "fields", "-e", "frame.number")
		if err != nil || strings.TrimSpace(out) == "" {
			t.Errorf("stream %s: no ACK completing the handshake (seq 1, ack 1): %v %s", stream, err, out)
		}
	}

	// Our own reader agrees on the packets.
	pkts, err := readPcapng(pcap)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) < 10 {
		t.Errorf("only %d TCP packets in the capture", len(pkts))
	}
}

// runTshark runs tshark (outside any namespace: it only reads a file).
func runTshark(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "tshark", args...)
	cmd.WaitDelay = time.Second
	out, err := cmd.Output() // stderr has tshark's chatter about running as root
	if ctx.Err() != nil {
		err = fmt.Errorf("tshark: no result within 60 s: %w", err)
	}
	return string(out), err
}

// grepContext returns the lines around the first occurrence of s.
func grepContext(out, s string, n int) string {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.Contains(l, s) {
			return strings.Join(lines[max(0, i-n):min(len(lines), i+5)], "\n")
		}
	}
	return ""
}
