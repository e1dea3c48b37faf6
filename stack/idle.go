package stack

import (
	"context"
	"fmt"
	"time"

	"ustack/stack/ipv4"
	"ustack/stack/tcp"
)

// WaitIdle returns nil once the stack is idle, or, when ctx ends first,
// ctx's error wrapped with what was still busy.
//
// The stack is idle when one pass over it finds all of these, and no packet
// entered or left the IPv4 layer during the pass:
//
//   - no input batch is being processed (by the reader goroutine or Poll);
//   - no packet is queued for the link or being written to it: every
//     packet the stack made has been handed to link.Endpoint.WriteBatch,
//     which returned (packets the link itself still holds — a Pipe's queue,
//     an Impaired delay — are the link's, not the stack's);
//   - every connection is in ESTABLISHED, CLOSE-WAIT, FIN-WAIT-2,
//     TIME-WAIT or CLOSED: none has a SYN or FIN of its own unacknowledged;
//   - no connection has data in its send buffer (unsent, or sent and not
//     yet acknowledged);
//   - no connection has a timer due within its Config.DelayedAck from now,
//     so none owes a delayed ACK. The timers left run on their own without
//     being transient: keepalive (which sends a probe only after KeepIdle
//     of silence), and the FIN-WAIT-2 and TIME-WAIT timers (which send
//     nothing). A connection whose keepalive interval is shorter than its
//     DelayedAck may therefore never look idle.
//
// Idle means the stack will send nothing until the application acts, a
// packet arrives, or a keepalive probe falls due. WaitIdle polls (every
// millisecond, backing off to 10 ms of real time); with a virtual clock
// the caller advances time, as a delayed ACK is only sent when it does.
func (s *Stack) WaitIdle(ctx context.Context) error {
	wait := time.Millisecond
	for {
		busy := s.busy()
		if busy == "" {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("stack: not idle (%s): %w", busy, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 10*time.Millisecond)
	}
}

// busy returns what keeps the stack from being idle now, or "".
func (s *Stack) busy() string {
	moved := func() uint64 { return s.ip.Stats.Load(ipv4.Received) + s.ip.Stats.Load(ipv4.Sent) }
	before := moved()
	if s.rxBusy() {
		return "processing input"
	}
	s.mu.RLock()
	conns := make([]*Conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.RUnlock()
	now := s.clk.Now()
	for _, c := range conns {
		if why := c.busy(now); why != "" {
			return fmt.Sprintf("%v: %s", c.tcb.ID, why)
		}
	}
	for _, ln := range s.lanes {
		ln.txMu.Lock()
		queued, writing := len(ln.tx.pkts), ln.writing
		ln.txMu.Unlock()
		if queued > 0 || writing {
			return fmt.Sprintf("%d packets queued for the link, a flush writing: %v", queued, writing)
		}
	}
	if s.rxBusy() || moved() != before {
		return "packets moved during the check"
	}
	return ""
}

// rxBusy reports whether a lane is processing an input batch.
func (s *Stack) rxBusy() bool {
	for _, ln := range s.lanes {
		if ln.rxBusy.Load() != 0 {
			return true
		}
	}
	return false
}

// busy returns what keeps the connection from being idle at now (see
// WaitIdle), or "".
func (c *Conn) busy(now time.Time) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch st := c.tcb.State(); st {
	case tcp.Established, tcp.CloseWait, tcp.FinWait2, tcp.TimeWait, tcp.Closed:
	default:
		return st.String()
	}
	if n := c.tcb.Unsent(); n > 0 {
		return fmt.Sprintf("%d bytes in the send buffer", n)
	}
	if n := c.tcb.Info().Unacked; n > 0 {
		return fmt.Sprintf("%d sequence numbers unacknowledged", n)
	}
	if d := c.tcb.NextDeadline(); !d.IsZero() && !d.After(now.Add(c.tcb.Config().DelayedAck)) {
		return fmt.Sprintf("a timer due in %v", d.Sub(now))
	}
	return ""
}
