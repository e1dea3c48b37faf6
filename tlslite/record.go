package tlslite

// The record layer, RFC 5246 §6: content types (§6.2.1), fragmentation
// and reassembly of handshake messages across records, the 2^14 plaintext
// limit (§6.2.1) and 2^14+2048 ciphertext limit (§6.2.3), sequence numbers
// (§6.1), AEAD protection (§6.2.3.3, RFC 5288 §3), alerts (§7.2) and
// ChangeCipherSpec (§7.1).

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// halfConn is one direction's protection state. The mutex guards it and,
// for the output side, outBuf.
type halfConn struct {
	sync.Mutex
	err  error       // sticky first permanent error
	aead *recordAEAD // nil until ChangeCipherSpec
	next *recordAEAD // installed by the next ChangeCipherSpec
	seq  uint64      // RFC 5246 §6.1: reset to 0 on ChangeCipherSpec
}

func (hc *halfConn) setErr(err error) error {
	if hc.err == nil {
		hc.err = err
	}
	return err
}

// changeCipher installs the pending state, RFC 5246 §7.1.
func (hc *halfConn) changeCipher() bool {
	if hc.next == nil {
		return false
	}
	hc.aead, hc.next, hc.seq = hc.next, nil, 0
	return true
}

// ---- input ----

// fill ensures raw holds at least n unprocessed bytes.
func (c *Conn) fill(n int) error {
	if n > len(c.raw) {
		// Start small (a handshake flight fits); grow to two full records
		// once a record needs it, so that bulk reads are large.
		size := 4096
		if n > size {
			size = 2 * (recordHeaderLen + maxCiphertext)
		}
		grown := make([]byte, size)
		c.rawW = copy(grown, c.raw[c.rawR:c.rawW])
		c.rawR = 0
		c.raw = grown
	}
	for c.rawW-c.rawR < n {
		if c.rawR == c.rawW {
			c.rawR, c.rawW = 0, 0
		} else if c.rawR+n > len(c.raw) {
			copy(c.raw, c.raw[c.rawR:c.rawW])
			c.rawW -= c.rawR
			c.rawR = 0
		}
		m, err := c.conn.Read(c.raw[c.rawW:])
		c.rawW += m
		if err != nil && c.rawW-c.rawR < n {
			return err
		}
	}
	return nil
}

// readRecord reads one record and dispatches it: handshake bytes go to
// c.hand, application data to c.input, alerts and ChangeCipherSpec are
// handled here. The caller holds c.in.
func (c *Conn) readRecord(expectCCS bool) error {
	if c.in.err != nil {
		return c.in.err
	}
	typ, rec, err := c.nextRecord()
	if err != nil {
		return err
	}
	seq := c.in.seq
	data := rec[recordHeaderLen:]
	var observed []byte // the record as on the wire, for the Observer
	if typ == recordTypeApplicationData && c.config.Observer != nil {
		observed = append([]byte(nil), rec...)
	}
	if c.in.aead != nil {
		if data, err = c.openRecord(rec); err != nil {
			return err
		}
	}
	if len(data) == 0 {
		// RFC 5246 §6.2.1: no zero-length handshake, alert or
		// ChangeCipherSpec fragments; empty application data is allowed
		// but bounded.
		if typ != recordTypeApplicationData {
			return c.in.setErr(c.sendAlert(AlertUnexpectedMessage, errors.New("empty record")))
		}
		c.emptyRecords++
		if c.emptyRecords > maxEmptyRecords {
			return c.in.setErr(c.sendAlert(AlertUnexpectedMessage, errors.New("too many empty records")))
		}
		return nil
	}
	c.emptyRecords = 0
	if typ != recordTypeAlert {
		c.warnings = 0
	}

	switch typ {
	case recordTypeAlert:
		return c.handleAlert(data)

	case recordTypeChangeCipherSpec:
		// RFC 5246 §7.1: one byte of value 1, only where expected and on a
		// handshake message boundary.
		if len(data) != 1 || data[0] != 1 {
			return c.in.setErr(c.sendAlert(AlertDecodeError, errors.New("malformed ChangeCipherSpec")))
		}
		if !expectCCS || len(c.hand) > 0 || !c.in.changeCipher() {
			return c.in.setErr(c.sendAlert(AlertUnexpectedMessage, errors.New("unexpected ChangeCipherSpec")))
		}
		c.observe(false, func(e endpoint) Event { return ChangeCipherSpecEvent{e} })
		return errCCSReceived

	case recordTypeApplicationData:
		if !c.handshakeDone.Load() || expectCCS {
			return c.in.setErr(c.sendAlert(AlertUnexpectedMessage, errors.New("application data before the handshake finished")))
		}
		c.observe(false, func(e endpoint) Event {
			return ApplicationDataEvent{endpoint: e, Seq: seq, Length: len(data), Record: observed}
		})
		c.input = data
		return nil

	case recordTypeHandshake:
		if expectCCS {
			return c.in.setErr(c.sendAlert(AlertUnexpectedMessage, errors.New("handshake message where ChangeCipherSpec was expected")))
		}
		if len(c.hand)+len(data) > maxHandshakeSize+4 {
			return c.in.setErr(c.sendAlert(AlertIllegalParameter, errors.New("handshake message too large")))
		}
		c.hand = append(c.hand, data...)
		return nil
	}
	return nil
}

// openRecord decrypts and authenticates rec with the read keys
// (RFC 5246 §6.2.3.3) and advances the sequence number.
func (c *Conn) openRecord(rec []byte) ([]byte, error) {
	data, err := c.in.aead.open(c.in.seq, rec)
	if err != nil {
		// RFC 5246 §7.2.2: bad_record_mac for any record that fails
		// authentication.
		return nil, c.in.setErr(c.sendAlert(AlertBadRecordMAC, err))
	}
	if len(data) > maxPlaintext {
		return nil, c.in.setErr(c.sendAlert(AlertRecordOverflow, fmt.Errorf("plaintext length %d", len(data))))
	}
	c.in.seq++
	return data, nil
}

// nextRecord reads one whole record and checks its header: type, version
// and length (RFC 5246 §6.2.1, §6.2.3). rec aliases c.raw.
func (c *Conn) nextRecord() (typ recordType, rec []byte, err error) {
	if err := c.fillRecord(recordHeaderLen, "truncated record header"); err != nil {
		return 0, nil, err
	}
	hdr := c.raw[c.rawR : c.rawR+recordHeaderLen]
	typ = recordType(hdr[0])
	vers := uint16(hdr[1])<<8 | uint16(hdr[2])
	n := int(hdr[3])<<8 | int(hdr[4])
	switch typ {
	case recordTypeChangeCipherSpec, recordTypeAlert, recordTypeHandshake, recordTypeApplicationData:
	default:
		// RFC 5246 §6: an unexpected record type gets unexpected_message.
		return 0, nil, c.in.setErr(c.sendAlert(AlertUnexpectedMessage, fmt.Errorf("unknown record type %d", typ)))
	}
	if hdr[1] != 3 || (c.haveVers && vers != VersionTLS12) {
		return 0, nil, c.in.setErr(c.sendAlert(AlertProtocolVersion, fmt.Errorf("record version %#04x", vers)))
	}
	// RFC 5246 §6.2.1 and §6.2.3: length limits, record_overflow beyond.
	if c.in.aead == nil && n > maxPlaintext || n > maxCiphertext {
		return 0, nil, c.in.setErr(c.sendAlert(AlertRecordOverflow, fmt.Errorf("record length %d", n)))
	}
	if err := c.fillRecord(recordHeaderLen+n, "truncated record"); err != nil {
		return 0, nil, err
	}
	rec = c.raw[c.rawR : c.rawR+recordHeaderLen+n]
	c.rawR += recordHeaderLen + n
	return typ, rec, nil
}

// fillRecord is fill for the record at rawR. A stream that ends inside the
// record (RFC 5246 §6.2.1 framing) is decode_error, reported as truncated;
// a clean end before it is io.EOF. A timeout is returned as is, so that a
// later read may go on; any other error is permanent.
func (c *Conn) fillRecord(n int, truncated string) error {
	err := c.fill(n)
	if err == io.EOF && c.rawW-c.rawR != 0 {
		err = io.ErrUnexpectedEOF
	}
	switch {
	case err == nil:
		return nil
	case err == io.ErrUnexpectedEOF:
		return c.in.setErr(c.sendAlert(AlertDecodeError, errors.New(truncated)))
	case isTemporary(err):
		return err
	}
	return c.in.setErr(err)
}

// handleAlert processes a received alert (RFC 5246 §7.2).
func (c *Conn) handleAlert(data []byte) error {
	if len(data) != 2 {
		return c.in.setErr(c.sendAlert(AlertDecodeError, errors.New("alert record length")))
	}
	level, desc := AlertLevel(data[0]), Alert(data[1])
	c.observe(false, func(e endpoint) Event { return AlertEvent{endpoint: e, Level: level, Alert: desc} })
	if desc == AlertCloseNotify {
		// RFC 5246 §7.2.1: the peer will send no more.
		return c.in.setErr(io.EOF)
	}
	switch level {
	case AlertLevelWarning:
		c.warnings++
		if c.warnings > maxWarningAlerts {
			return c.in.setErr(c.sendAlert(AlertUnexpectedMessage, errors.New("too many warning alerts")))
		}
		return nil
	case AlertLevelFatal:
		return c.in.setErr(&AlertError{Alert: desc})
	default:
		return c.in.setErr(c.sendAlert(AlertIllegalParameter, fmt.Errorf("alert level %d", level)))
	}
}

var errCCSReceived = errors.New("tlslite: ChangeCipherSpec received")

func isTemporary(err error) bool {
	// net/http ends its background read after every request by moving the
	// read deadline into the past: the timeout is common, and errors.As's
	// reflection cost 1.6% of a keep-alive HTTPS server's CPU.
	if ne, ok := err.(net.Error); ok {
		return ne.Timeout()
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readChangeCipherSpec reads records until the peer's ChangeCipherSpec.
func (c *Conn) readChangeCipherSpec() error {
	for {
		err := c.readRecord(true)
		if err == errCCSReceived {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readHandshakeBytes returns the next whole handshake message (header
// included), reassembled from as many records as it spans.
func (c *Conn) readHandshakeBytes() ([]byte, error) {
	for len(c.hand) < 4 {
		if err := c.readRecord(false); err != nil {
			return nil, c.truncatedMessage(err)
		}
	}
	n := int(c.hand[1])<<16 | int(c.hand[2])<<8 | int(c.hand[3])
	if n > maxHandshakeSize {
		return nil, c.in.setErr(c.sendAlert(AlertIllegalParameter, fmt.Errorf("handshake message of %d bytes", n)))
	}
	for len(c.hand) < 4+n {
		if err := c.readRecord(false); err != nil {
			return nil, c.truncatedMessage(err)
		}
	}
	msg := c.hand[: 4+n : 4+n]
	c.hand = c.hand[4+n:]
	if len(c.hand) == 0 {
		c.hand = nil // the message keeps the old array
	}
	return msg, nil
}

// truncatedMessage turns a clean EOF in the middle of a handshake message
// into decode_error.
func (c *Conn) truncatedMessage(err error) error {
	if err == io.EOF && len(c.hand) > 0 {
		return c.in.setErr(c.sendAlert(AlertDecodeError, errors.New("truncated handshake message")))
	}
	return err
}

// readHandshake reads the next message, checks it is of type want, parses
// it and adds it to the transcript; the caller reports it to the Observer
// once it knows the values the event carries.
func (c *Conn) readHandshake(t *transcript, want uint8, m handshakeMessage) ([]byte, error) {
	data, err := c.readHandshakeBytes()
	if err != nil {
		return nil, err
	}
	if data[0] != want {
		return nil, c.sendAlert(AlertUnexpectedMessage, fmt.Errorf("got %s, want %s", msgName(data[0]), msgName(want)))
	}
	if !m.unmarshal(data) {
		return nil, c.sendAlert(AlertDecodeError, fmt.Errorf("malformed %s", msgName(want)))
	}
	if t != nil {
		t.Write(data)
	}
	return data, nil
}

func msgName(t uint8) string { return enumName(handshakeNames, t, "handshake") }

// ---- output ----

// writeRecordLocked seals data as records of type typ (fragmented at
// 2^14) into outBuf and, unless a flight is being collected, writes them.
// The caller holds c.out.
func (c *Conn) writeRecordLocked(typ recordType, data []byte) (int, error) {
	if c.out.err != nil {
		return 0, c.out.err
	}
	written := 0
	for len(data) > 0 {
		m := min(len(data), maxPlaintext)
		start := len(c.outBuf)
		if c.out.aead == nil {
			vers := VersionTLS12
			if !c.haveVers {
				vers = versionTLS10
			}
			c.outBuf = append(c.outBuf, byte(typ), byte(vers>>8), byte(vers), byte(m>>8), byte(m))
			c.outBuf = append(c.outBuf, data[:m]...)
		} else {
			if c.out.seq == ^uint64(0) {
				return written, c.out.setErr(errors.New("tlslite: sequence number wrapped"))
			}
			if need := len(c.outBuf) + recordHeaderLen + gcmExplicitNonce + m + gcmTagLen; need > cap(c.outBuf) {
				grown := make([]byte, len(c.outBuf), max(need, 2*cap(c.outBuf)))
				copy(grown, c.outBuf)
				c.outBuf = grown
			}
			c.outBuf = c.out.aead.seal(c.outBuf, c.out.seq, typ, data[:m])
			if typ == recordTypeApplicationData {
				seq, sealed := c.out.seq, c.outBuf[start:]
				c.observe(true, func(e endpoint) Event {
					return ApplicationDataEvent{endpoint: e, Seq: seq, Length: m, Record: append([]byte(nil), sealed...)}
				})
			}
			c.out.seq++
		}
		written += m
		data = data[m:]
		if !c.buffering && len(c.outBuf) >= 4*maxPlaintext {
			if err := c.flushLocked(); err != nil {
				return written, err
			}
		}
	}
	if !c.buffering {
		if err := c.flushLocked(); err != nil {
			return written, err
		}
	}
	return written, nil
}

func (c *Conn) flushLocked() error {
	if len(c.outBuf) == 0 {
		return nil
	}
	_, err := c.conn.Write(c.outBuf)
	c.outBuf = c.outBuf[:0]
	if err != nil {
		return c.out.setErr(err)
	}
	return nil
}

// setBuffering starts collecting a flight; flush writes it.
func (c *Conn) setBuffering() {
	c.out.Lock()
	c.buffering = true
	c.out.Unlock()
}

func (c *Conn) flush() error {
	c.out.Lock()
	defer c.out.Unlock()
	c.buffering = false
	return c.flushLocked()
}

// writeHandshake sends one handshake message, adds it to the transcript
// and reports it to the Observer with the event build makes.
func (c *Conn) writeHandshake(t *transcript, m handshakeMessage, build func(message) Event) error {
	data, err := m.marshal()
	if err != nil {
		return c.sendAlert(AlertInternalError, err)
	}
	if t != nil {
		t.Write(data)
	}
	c.out.Lock()
	_, err = c.writeRecordLocked(recordTypeHandshake, data)
	c.out.Unlock()
	if err != nil {
		return err
	}
	c.observeMessage(true, data, build)
	return nil
}

// writeChangeCipherSpec sends ChangeCipherSpec and switches the write side
// to the pending keys (RFC 5246 §7.1).
func (c *Conn) writeChangeCipherSpec() error {
	c.out.Lock()
	defer c.out.Unlock()
	if _, err := c.writeRecordLocked(recordTypeChangeCipherSpec, []byte{1}); err != nil {
		return err
	}
	c.out.changeCipher()
	c.observe(true, func(e endpoint) Event { return ChangeCipherSpecEvent{e} })
	return nil
}

// sendAlert sends a fatal alert (or the warnings close_notify and
// no_renegotiation) and returns the error to report.
func (c *Conn) sendAlert(a Alert, err error) error {
	c.out.Lock()
	defer c.out.Unlock()
	return c.sendAlertLocked(a, err)
}

func (c *Conn) sendAlertLocked(a Alert, err error) error {
	level := AlertLevelFatal
	if a == AlertCloseNotify || a == AlertNoRenegotiation {
		level = AlertLevelWarning
	}
	ae := &AlertError{Alert: a, Sent: true, Err: err}
	if c.out.err == nil {
		c.buffering = false
		if _, werr := c.writeRecordLocked(recordTypeAlert, []byte{byte(level), byte(a)}); werr == nil {
			c.observe(true, func(e endpoint) Event { return AlertEvent{endpoint: e, Level: level, Alert: a} })
		}
	}
	if level == AlertLevelFatal {
		c.out.setErr(ae)
	}
	return ae
}
