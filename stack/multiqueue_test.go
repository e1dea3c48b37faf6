package stack

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"testing"
	"time"

	"ustack/internal/waitfor"
	"ustack/stack/link"
	"ustack/stack/tcp"
)

// mqPair returns a stack on the two-queue end of a MultiPipe (one reader
// per queue) and one on its single end.
func mqPair(t *testing.T, queues int) (mq, single *Stack) {
	t.Helper()
	em, es := link.MultiPipe(1500, queues)
	short := Options{TCP: tcp.Config{MSL: 50 * time.Millisecond}}
	optsM, optsS := short, short
	optsM.Addr, optsS.Addr = addrA, addrB
	mq, err := New(em, strict(optsM))
	if err != nil {
		t.Fatal(err)
	}
	single, err = New(es, strict(optsS))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mq.Close(); single.Close() })
	if n := len(mq.Stats().Queues); n != queues {
		t.Fatalf("the stack reads %d queues, want %d", n, queues)
	}
	return mq, single
}

// echoMany dials n connections from `from` to port on addr at once, and
// on each sends size bytes and reads them back.
func echoMany(t *testing.T, from *Stack, addr netip.Addr, port uint16, n, size int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := from.DialTCP(ctxT(t, 10*time.Second), netip.AddrPortFrom(addr, port))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			msg := bytes.Repeat([]byte{byte(i)}, size)
			go c.Write(msg)
			got := make([]byte, size)
			if _, err := io.ReadFull(c, got); err != nil {
				errs <- fmt.Errorf("connection %d: %w", i, err)
				return
			}
			if !bytes.Equal(got, msg) {
				errs <- fmt.Errorf("connection %d: echo differs", i)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A stack on a two-queue link reads and writes both queues: connections
// opened to it (each answered on the queue its SYN came in on) and from it
// (whose first lane, by hash, may not be the one the link gives their
// flow: they move) all carry their data, and both queues carried traffic
// both ways.
func TestMultiQueueBothWays(t *testing.T) {
	mq, single := mqPair(t, 2)
	lm, err := mq.ListenTCP(7)
	if err != nil {
		t.Fatal(err)
	}
	defer lm.Close()
	go echoServer(lm)
	ls, err := single.ListenTCP(7)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	go echoServer(ls)

	echoMany(t, single, addrA, 7, 16, 200_000) // passive opens on mq
	echoMany(t, mq, addrB, 7, 16, 200_000)     // active opens from mq

	st := mq.Stats()
	for i, q := range st.Queues {
		if q.RxPackets == 0 || q.TxPackets == 0 {
			t.Errorf("queue %d: %d packets in, %d out: both queues should carry traffic", i, q.RxPackets, q.TxPackets)
		}
	}
	t.Logf("queues: %+v", st.Queues)
	seen := map[string]bool{}
	mq.Each(func(name string, _ uint64) { seen[name] = true })
	for _, name := range []string{"queue.0.rx_packets", "queue.1.tx_packets", "queue.1.rx_batches"} {
		if !seen[name] {
			t.Errorf("Each does not list %s", name)
		}
	}
	// Every connection closes, and the timers of both lanes end them.
	if !waitfor.Within(10*time.Second, func() bool { return mq.Stats().TCPConns == 0 && single.Stats().TCPConns == 0 }) {
		t.Errorf("connections left: %d on the multi-queue stack, %d on the other", mq.Stats().TCPConns, single.Stats().TCPConns)
	}
}

// A connection whose flow the link moves to another queue goes on: its
// output and its timer entry follow it to the new lane.
func TestMultiQueueConnMovesLane(t *testing.T) {
	mq, single := mqPair(t, 2)
	ls, err := single.ListenTCP(7)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	go echoServer(ls)
	// Find a flow whose lane by hash (before its first segment in) differs
	// from the queue the link gives it: dial until one such connection
	// is made, and check it is on the link's queue afterwards.
	for port := uint16(40000); port < 40100; port++ {
		id := tcp.ID{Local: netip.AddrPortFrom(addrA, port), Remote: netip.AddrPortFrom(addrB, 7)}
		first := mq.laneFor(id)
		d := Dialer{LocalAddr: id.Local}
		c, err := d.DialContext(ctxT(t, 5*time.Second), mq, id.Remote)
		if err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		ln, thIdx := c.lane(), c.thIdx
		c.mu.Unlock()
		if ln == first {
			c.Abort()
			continue
		}
		if int(thIdx)-1 != ln.idx {
			t.Errorf("the connection moved to lane %d, its timer entry is in another heap", ln.idx)
		}
		msg := bytes.Repeat([]byte("m"), 100_000)
		go c.Write(msg)
		got := make([]byte, len(msg))
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("after the move: %v", err)
		}
		c.Close()
		return
	}
	t.Fatal("no flow in 100 had a hash lane other than its queue")
}

// A stack in Manual mode polls one endpoint: it refuses a link of several
// queues rather than leave all but one unread.
func TestMultiQueueManualRefused(t *testing.T) {
	em, _ := link.MultiPipe(1500, 2)
	if _, err := New(em, Options{Addr: addrA, Manual: true}); err == nil {
		t.Fatal("a Manual stack took a two-queue link")
	}
}
