package sim

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"ustack/stack"
	"ustack/stack/clock"
	"ustack/stack/tcp"
)

func infoString(c *stack.Conn) string {
	i := c.Info()
	return fmt.Sprintf("state %v snd.una %d snd.nxt %d rcv.nxt %d unacked %d unsent %d sndwnd %d rcvwnd %d cwnd %d rto %v rtx %d timeouts %d",
		i.State, i.SndUna, i.SndNxt, i.RcvNxt, i.Unacked, i.Unsent, i.SndWnd, i.RcvWnd, i.Cwnd, i.RTO, i.Stats.Retransmits, i.Stats.Timeouts)
}

// describe lists the connections that are not finished, for a stuck run.
func (r *run) describe() string {
	var b strings.Builder
	for _, c := range r.cs {
		if c.done && !r.anyOpen(c) {
			continue
		}
		fmt.Fprintf(&b, "\n  conn %d (dialed %v, apps done %v):", c.i, c.dialed, c.done)
		for role, e := range c.ends {
			if e.c == nil {
				fmt.Fprintf(&b, "\n    %s %s: no connection yet", roleName(role), names[e.stack])
				continue
			}
			fmt.Fprintf(&b, "\n    %s %s %v: sent %d/%d read %d/%d eof %v shut %v closed %v: %s",
				roleName(role), names[e.stack], e.c.ID(), e.sent, e.sendTotal, e.recvd, e.recvWant,
				e.eof, e.shut, e.closed, infoString(e.c))
		}
	}
	for k, s := range r.st {
		fmt.Fprintf(&b, "\n  stack %s: %d TCBs", names[k], s.Stats().TCPConns)
	}
	return b.String()
}

func (r *run) anyOpen(c *connRun) bool {
	for _, e := range c.ends {
		if e.c != nil && e.c.State() != tcp.Closed {
			return true
		}
	}
	return false
}

// checkTrace checks each TCB's transitions: legal edges, one unbroken path
// from CLOSED (or LISTEN) to CLOSED, a clean ending (the ACK of our FIN in
// LAST-ACK, or 2*MSL in TIME-WAIT), TIME-WAIT held for 2*MSL, and CLOSED
// within CloseBound of the application's Close.
func (r *run) checkTrace() error {
	type key struct {
		stack int
		id    tcp.ID
	}
	var order []key
	paths := make(map[key][]Event)
	closedIdx := make(map[key]int) // index in Events of the CLOSED event
	for i, e := range r.res.Events {
		if e.To == tcp.Closed {
			closedIdx[key{e.Stack, e.ID}] = i
		}
		if !tcp.Legal(e.From, e.To) {
			return fmt.Errorf("illegal transition: %v", e)
		}
		k := key{e.Stack, e.ID}
		if _, ok := paths[k]; !ok {
			order = append(order, k)
		}
		paths[k] = append(paths[k], e)
	}
	closedAt := make(map[key]time.Time) // end of each TCB's data phase
	for _, c := range r.cs {
		for role, e := range c.ends {
			if e.c == nil {
				continue // a half-open connection's server: never accepted
			}
			t, peer := e.closedAt, c.ends[1-role]
			if peer.allReadAt.After(t) {
				t = peer.allReadAt
			}
			closedAt[key{e.stack, e.c.ID()}] = t
		}
	}
	if want := 2 * len(r.cs); len(order) != want {
		return fmt.Errorf("%d TCBs in the trace, want %d (2 per connection)", len(order), want)
	}
	for _, k := range order {
		p := paths[k]
		if f := p[0].From; f != tcp.Closed && f != tcp.Listen {
			return fmt.Errorf("%s %v: trace starts in %v: %v", names[k.stack], k.id, f, p[0])
		}
		for i := 1; i < len(p); i++ {
			if p[i].From != p[i-1].To {
				return fmt.Errorf("%s %v: broken path: %v then %v", names[k.stack], k.id, p[i-1], p[i])
			}
		}
		last := p[len(p)-1]
		if last.To != tcp.Closed {
			return fmt.Errorf("%s %v: ends in %v, not CLOSED", names[k.stack], k.id, last.To)
		}
		if slices.Contains(r.halfOpenIDs, k.id) {
			// A half-open connection: the listener's SYN-RECEIVED ran out
			// of retries, and keepalive reset the client.
			if (last.From == tcp.SynReceived && last.Cause == "timer SYN retries exhausted") ||
				(last.From == tcp.Established && strings.Contains(last.Cause, "RST")) {
				continue
			}
			return fmt.Errorf("%s %v: half-open connection ended by %v", names[k.stack], k.id, last)
		}
		switch {
		case last.From == tcp.LastAck && strings.HasPrefix(last.Cause, "rcv ") && !strings.Contains(last.Cause, "RST"):
		case last.From == tcp.TimeWait && last.Cause == "timer 2*MSL":
			tw := p[len(p)-2]
			if d := last.At - tw.At; d < 2*MSL {
				return fmt.Errorf("%s %v: TIME-WAIT lasted %v, less than 2*MSL = %v", names[k.stack], k.id, d, 2*MSL)
			}
		case (last.From == tcp.LastAck || last.From == tcp.TimeWait) && strings.Contains(last.Cause, "RST"):
			peer := key{1 - k.stack, tcp.ID{Local: k.id.Remote, Remote: k.id.Local}}
			if pi, ok := closedIdx[peer]; !ok || pi > closedIdx[k] {
				return fmt.Errorf("%s %v: reset while the peer's TCB was still open: %v", names[k.stack], k.id, last)
			}
			r.res.RSTEndings++
		default:
			return fmt.Errorf("%s %v: connection aborted: %v", names[k.stack], k.id, last)
		}
		ca, ok := closedAt[k]
		if !ok {
			return fmt.Errorf("%s %v: a TCB the script did not open: %v", names[k.stack], k.id, p[0])
		}
		if d := last.At - ca.Sub(clock.Epoch); d > CloseBound {
			return fmt.Errorf("%s %v: CLOSED %v after its data phase ended (bound %v)", names[k.stack], k.id, d, CloseBound)
		}
	}
	return nil
}
