package lab

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	"ustack/internal/record"
	"ustack/internal/waitfor"
	"ustack/stack/header"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// The flow-control lab's sizes: a receive buffer of 4 KiB (the window,
// unscaled) and 16 KiB to send.
const (
	labFlowBuf    = 4096
	labFlowTotal  = 16384
	labFlowProbes = 4 // probes to wait for before the reader wakes up
)

// flowData is what the sender sends: a pattern whose bytes say where they
// belong.
func flowData() []byte {
	b := make([]byte, labFlowTotal)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// flowConfig is the receiver's configuration: SO_RCVBUF on the listening
// socket (set before listen, as Linux needs for the window to follow it),
// and no window scaling, so that the window field is the window.
func flowConfig() tcp.Config { return tcp.Config{RcvBuf: labFlowBuf, NoWindowScale: true} }

// zeroWindowProbes are the sender's probes: pure ACKs one below the
// receiver's latest acknowledgment (Linux's and ustack's probe, seq =
// SND.UNA−1), sent while the window is zero.
func zeroWindowProbes(pk []record.Pkt) []record.Pkt {
	var ack uint32
	var zero bool
	var out []record.Pkt
	for _, p := range pk {
		if !p.ToServer && p.Has(header.FlagACK) && !p.Has(header.FlagSYN) {
			ack, zero = p.Ack, p.Window == 0
			continue
		}
		if p.ToServer && zero && p.Is(header.FlagACK) && len(p.Payload) == 0 && p.Seq == ack-1 {
			out = append(out, p)
		}
	}
	return out
}

// flowClaims checks the story; tol is how far an interval may be from
// twice the one before (0 in virtual time), probes the sender's own count
// (-1: not known, the kernel's).
func (r *labRun) flowClaims(sent, got []byte, tol float64, probes int) {
	pk := r.rec.Packets()
	zp := zeroWindowProbes(pk)
	var wins []string
	first := time.Time{}
	if len(zp) > 0 {
		first = zp[0].T
	}
	for _, p := range pk {
		if !p.ToServer && (first.IsZero() || p.T.Before(first)) {
			wins = append(wins, fmt.Sprint(p.Window))
		}
	}
	shrinks := len(wins) >= 2 && wins[0] == fmt.Sprint(labFlowBuf) && wins[len(wins)-1] == "0"
	r.check(shrinks, "the receiver's window starts at its buffer, %d, and shrinks to zero as the buffer fills (win=%s)", labFlowBuf, strings.Join(wins, ", "))
	r.check(len(zp) >= labFlowProbes, "the sender probes the zero window: %d probes, ACKs with seq=SND.UNA−1 and no data", len(zp))
	// Answers to old segments are rate-limited (one per 500 ms, Linux's
	// tcp_invalid_ratelimit), so not every probe gets one.
	answers, open := 0, false
	for i, z := range zp {
		for _, p := range pk {
			if p.ToServer || p.T.Before(z.T) || i+1 < len(zp) && !p.T.Before(zp[i+1].T) {
				continue
			}
			if p.Window == 0 && p.Ack == z.Seq+1 {
				answers++
				break
			}
			open = open || i+1 < len(zp)
		}
	}
	r.check(answers >= 2 && !open, "the receiver answers the probes with win=0 while its buffer is full (%d answers; ACKs to old segments are rate-limited, as in Linux)", answers)
	if probes >= 0 {
		r.check(probes == len(zp), "the sender's counter of zero-window probes agrees (%d)", probes)
	}
	var gaps []string
	doubles := len(zp) >= 3
	for i := 1; i < len(zp); i++ {
		d := zp[i].T.Sub(zp[i-1].T)
		gaps = append(gaps, d.Round(time.Millisecond).String())
		if i >= 2 {
			ratio := float64(d) / float64(zp[i-1].T.Sub(zp[i-2].T))
			doubles = doubles && ratio >= 2-tol && ratio <= 2+tol
		}
	}
	r.check(doubles, "the intervals between probes double (exponential backoff): %s", strings.Join(gaps, ", "))
	var upd record.Pkt
	okU := false
	if len(zp) > 0 {
		last := zp[len(zp)-1]
		upd, okU = record.First(pk, func(p record.Pkt) bool { return !p.ToServer && p.T.After(last.T) && p.Window > 0 })
	}
	_, resumed := record.First(pk, func(p record.Pkt) bool { return okU && p.ToServer && len(p.Payload) > 0 && !p.T.Before(upd.T) })
	r.check(okU && resumed, "once the application reads, the receiver sends a window update (win=%d) and the sender resumes", upd.Window)
	r.check(bytes.Equal(got, sent), "the transfer completes: %d of %d bytes, all intact and in order", len(got), len(sent))
}

// winSayer narrates each change of the window the server advertises (the
// ladder does not show windows): a decide hook for its tap.
func (r *labRun) winSayer() func(p record.Pkt) link.Action {
	last := -1
	return func(p record.Pkt) link.Action {
		if int(p.Window) != last && !p.Has(header.FlagRST) {
			last = int(p.Window)
			r.say("the server's next segment advertises win=%d", p.Window)
		}
		return link.Pass
	}
}

// labFlowControl: a slow reader closes the window; the sender probes it
// with backoff; the reader reads, the window reopens, the transfer ends.
func labFlowControl(r *labRun) error {
	w, ln, err := r.vListen(labVConfig{srv: flowConfig(), srvDecide: r.winSayer(), cli: tcp.Config{NoWindowScale: true}, cliSeed: 10, srvSeed: 10})
	if err != nil {
		return err
	}
	defer w.close()
	r.ladderHeader()
	r.say("the server's application sets a receive buffer of %d bytes (SO_RCVBUF) and does not read for now", labFlowBuf)
	c, sc, err := w.establish(ln)
	if err != nil {
		return err
	}
	data := flowData()
	r.say("the client writes %d bytes; the window (win, in each ACK of the server) says how many more the server can take", labFlowTotal)
	n, _ := c.TryWrite(data) // all of it: the send buffer is larger
	w.until(time.Minute, func() bool { return len(zeroWindowProbes(r.rec.Packets())) >= labFlowProbes })
	r.say("the window is zero: the sender holds %d bytes and probes, backing off, until it opens", n-int(sc.Info().RcvNxt-sc.Info().IRS-1))
	r.say("the server's application wakes up and reads")
	var got []byte
	buf := make([]byte, 1500)
	w.until(time.Minute, func() bool {
		for {
			k, err := sc.TryRead(buf)
			got = append(got, buf[:k]...)
			if k == 0 || err != nil {
				break
			}
		}
		w.settle() // the window updates, before time moves on
		return len(got) >= len(data)
	})
	r.say("the server read %d bytes", len(got))
	r.flowClaims(data, got, 0, int(c.(ustackConn).Info().Stats.ZeroWindowProbes))
	return nil
}

func labFlowControlTUN(r *labRun) error {
	w, ln, done, err := r.tunListen(flowConfig(), r.winSayer(), nil)
	defer done()
	if err != nil {
		return err
	}
	c, sc, err := w.connect(ln)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	sc.SetDeadline(time.Now().Add(15 * time.Second))
	r.rec.WaitPkts(2*time.Second, record.AtLeast(3))
	r.say("the server's application sets a receive buffer of %d bytes (SO_RCVBUF) and does not read for now", labFlowBuf)
	data := flowData()
	r.say("the client writes %d bytes; the window (win, in each ACK of the server) says how many more the server can take", labFlowTotal)
	werr := make(chan error, 1)
	go func() { _, err := c.Write(data); werr <- err }()
	waitfor.Within(10*time.Second, func() bool { return len(zeroWindowProbes(r.rec.Packets())) >= labFlowProbes })
	r.say("the window is zero: the kernel holds the rest and probes, backing off, until it opens")
	r.say("the server's application wakes up and reads")
	got, rerr := io.ReadAll(io.LimitReader(sc, int64(len(data))))
	if err := <-werr; err != nil {
		return err
	}
	r.say("the server read %d bytes", len(got))
	if rerr != nil {
		return rerr
	}
	r.flowClaims(data, got, 0.3, -1)
	return nil
}
