package services

import (
	"net"
	"slices"
	"sync"
	"time"

	"ustack/internal/waitfor"
	"ustack/stack"
	"ustack/stack/tcp"
)

// Stopped is what Stop did.
type Stopped struct {
	Closed  int           // connections closed: FIN, or RST where data was unread
	Aborted int           // of those, still closing after the drain time: reset
	Took    time.Duration // from the first listener closed to the last connection done
}

// Stop ends every service as a Linux process's exit ends its sockets, with
// no request in flight let finish: the listeners close (no more accepts,
// and connections not yet accepted are reset), then every open connection
// of every service, HTTP's included, is closed at once (FIN after what is
// queued, or RST where received data is unread). Stop waits up to drain
// for each to be done on the wire — its FIN acknowledged (FIN-WAIT-2,
// TIME-WAIT) or the connection CLOSED — and aborts those still closing
// then (RST), so that no peer is left waiting for a FIN that will never
// come once the stack is gone. Connections of other stacks than ustack's
// are only closed.
func (s *Server) Stop(drain time.Duration) Stopped {
	start := time.Now()
	ls, srvs, conns := s.take()
	for _, l := range ls {
		l.Close()
	}
	var closing sync.WaitGroup
	for i, c := range conns {
		c = rawConn(c)
		conns[i] = c
		closing.Go(func() { c.Close() }) // with SO_LINGER > 0, Close waits
	}
	waitfor.Within(drain, func() bool { return !slices.ContainsFunc(conns, onWire) })
	st := Stopped{Closed: len(conns)}
	for _, c := range conns {
		if onWire(c) {
			c.(*stack.Conn).Abort()
			st.Aborted++
		}
	}
	closing.Wait()
	st.Took = time.Since(start)
	for _, srv := range srvs {
		srv.Close() // its connections are closed: this ends its goroutines
	}
	s.wg.Wait()
	return st
}

// onWire reports whether c, closed, still has its FIN to send or to see
// acknowledged (FIN-WAIT-1, CLOSING, LAST-ACK, or still open).
func onWire(c net.Conn) bool {
	sc, ok := c.(*stack.Conn)
	if !ok {
		return false
	}
	switch sc.State() {
	case tcp.FinWait2, tcp.TimeWait, tcp.Closed:
		return false
	}
	return true
}
