package lab

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"ustack/internal/record"
	"ustack/stack/tcp"
)

// streamEnds are the two ends of the byte-stream lab: send writes once on
// the client and returns when the bytes have reached the server's buffer;
// read reads once on the server (the data is there already).
type streamEnds struct {
	send func(b []byte) error
	read func(b []byte) (int, error)
}

// The byte-stream lab's messages.
var (
	streamWrites = []string{"one,", "two,", "three."}
	streamOne    = "0123456789abcdefghijABCDEFGHIJ" // one write, read 10 bytes at a time
	streamMsgs   = []string{"hello", "a longer message, forty bytes in all....", "bye"}
)

// streamSplit is where the framed stream is cut into two writes: inside
// the second message's length prefix.
const streamSplit = 11

// frame puts a 4-byte big-endian length before each message.
func frame(msgs []string) []byte {
	var b []byte
	for _, m := range msgs {
		b = binary.BigEndian.AppendUint32(b, uint32(len(m)))
		b = append(b, m...)
	}
	return b
}

// unframe takes every whole message from the front of buf; it returns them
// and what is left (a message not yet complete).
func unframe(buf []byte) (msgs []string, rest []byte) {
	for len(buf) >= 4 {
		n := int(binary.BigEndian.Uint32(buf))
		if len(buf) < 4+n {
			break
		}
		msgs = append(msgs, string(buf[4:4+n]))
		buf = buf[4+n:]
	}
	return msgs, buf
}

// payloads lists the data segments the client sent from packet n on.
func (r *labRun) payloads(n int) []string {
	var out []string
	for _, p := range r.since(n) {
		if p.ToServer && len(p.Payload) > 0 && !p.Dropped {
			out = append(out, string(p.Payload))
		}
	}
	return out
}

func quoteAll(s []string) string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, " ")
}

// byteStream tells the three parts of the lab over e and checks them.
func (r *labRun) byteStream(e streamEnds) error {
	r.section("1. three writes, one read")
	n := len(r.rec.Packets())
	for _, s := range streamWrites {
		r.say("the client writes %q", s)
		if err := e.send([]byte(s)); err != nil {
			return err
		}
	}
	r.say("the server's application reads only now, with a buffer of 100 bytes")
	buf := make([]byte, 100)
	k, err := e.read(buf)
	if err != nil {
		return err
	}
	got := string(buf[:k])
	r.say("one read returns %q", got)
	wire := r.payloads(n)
	r.check(slices.Equal(wire, streamWrites), "three writes went out as three segments: %s", quoteAll(wire))
	r.check(got == strings.Join(streamWrites, ""), "one read returned all three, with nothing to show where one write ended: %q", got)

	r.section("2. one write, three reads")
	n = len(r.rec.Packets())
	r.say("the client writes %d bytes at once: %q", len(streamOne), streamOne)
	if err := e.send([]byte(streamOne)); err != nil {
		return err
	}
	r.say("the server's application reads with a buffer of 10 bytes")
	var reads []string
	for range 3 {
		k, err := e.read(buf[:10])
		if err != nil {
			return err
		}
		reads = append(reads, string(buf[:k]))
	}
	r.say("three reads return %s", quoteAll(reads))
	wire = r.payloads(n)
	r.check(len(wire) == 1 && wire[0] == streamOne, "one write went out as one segment of %d bytes", len(streamOne))
	r.check(len(reads) == 3 && strings.Join(reads, "") == streamOne && len(reads[0]) == 10,
		"a reader with a 10-byte buffer got it in three reads: %s", quoteAll(reads))
	return r.framing(e)
}

// framing is the third part: a 4-byte length prefix recovers the messages
// whatever the segments and the reads.
func (r *labRun) framing(e streamEnds) error {
	r.section("3. framing: a 4-byte length before each message")
	n := len(r.rec.Packets())
	stream := frame(streamMsgs)
	r.say("the client frames three messages (%d bytes in all) and writes them in two pieces, cut at byte %d, inside a length prefix", len(stream), streamSplit)
	if err := e.send(stream[:streamSplit]); err != nil {
		return err
	}
	if err := e.send(stream[streamSplit:]); err != nil {
		return err
	}
	r.say("the server reads 7 bytes at a time and takes a message out whenever a whole one is there")
	var msgs []string
	var pending []byte
	reads := 0
	buf := make([]byte, 7)
	for len(msgs) < len(streamMsgs) && reads < 100 {
		k, err := e.read(buf)
		if err != nil {
			return err
		}
		reads++
		var got []string
		got, pending = unframe(append(pending, buf[:k]...))
		for _, m := range got {
			r.say("message %d: %q", len(msgs)+1, m)
			msgs = append(msgs, m)
		}
	}
	wire := r.payloads(n)
	sizes := make([]string, len(wire))
	for i, p := range wire {
		sizes[i] = fmt.Sprint(len(p))
	}
	r.check(len(wire) == 2 && len(wire[0]) == streamSplit, "the segments (%s bytes) do not follow the messages (4+%d, 4+%d, 4+%d bytes)",
		strings.Join(sizes, ", "), len(streamMsgs[0]), len(streamMsgs[1]), len(streamMsgs[2]))
	r.check(slices.Equal(msgs, streamMsgs) && len(pending) == 0 && bytes.Equal([]byte(strings.Join(wire, "")), stream),
		"from %d reads of at most 7 bytes the length prefix recovers exactly the three messages", reads)
	return nil
}

// labByteStream: TCP has no message boundaries.
func labByteStream(r *labRun) error {
	// Nagle off on the client (as Go's net.Dialer does): each write leaves
	// at once, so that the segments follow the writes.
	w, ln, err := r.vListen(labVConfig{cli: tcp.Config{NoDelay: true}, cliSeed: 8, srvSeed: 8})
	if err != nil {
		return err
	}
	defer w.close()
	r.ladderHeader()
	c, sc, err := w.establish(ln)
	if err != nil {
		return err
	}
	return r.byteStream(streamEnds{
		send: func(b []byte) error {
			if _, err := c.TryWrite(b); err != nil {
				return err
			}
			w.run(100 * time.Millisecond) // delivered and acknowledged
			return nil
		},
		read: func(b []byte) (int, error) {
			n, err := sc.TryRead(b)
			w.settle()
			return n, err
		},
	})
}

func labByteStreamTUN(r *labRun) error {
	_, c, sc, done, err := r.tunConnected(tcp.Config{}, nil)
	defer done()
	if err != nil {
		return err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	sc.SetDeadline(time.Now().Add(10 * time.Second))
	r.rec.WaitPkts(2*time.Second, record.AtLeast(3))
	sent := 0
	return r.byteStream(streamEnds{
		send: func(b []byte) error {
			if _, err := c.Write(b); err != nil {
				return err
			}
			sent += len(b)
			// Wait until ustack has acknowledged it: it is in the buffer.
			pk := r.rec.WaitPkts(2*time.Second, func(pk []record.Pkt) bool {
				return len(record.Stream(pk, true)) >= sent && len(record.Where(pk, func(p record.Pkt) bool {
					return !p.ToServer && p.Ack == pk[0].Seq+1+uint32(sent)
				})) > 0
			})
			if len(record.Stream(pk, true)) < sent {
				return fmt.Errorf("only %d of %d bytes reached the server", len(record.Stream(pk, true)), sent)
			}
			return nil
		},
		read: sc.Read,
	})
}
