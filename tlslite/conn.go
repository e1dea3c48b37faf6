package tlslite

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is a TLS 1.2 connection over any net.Conn; it implements net.Conn.
// The handshake runs on the first Read or Write, or explicitly through
// Handshake.
type Conn struct {
	conn     net.Conn
	config   *Config
	isClient bool

	handshakeMu   sync.Mutex
	handshakeErr  error
	handshakeDone atomic.Bool
	state         ConnectionState // written by the handshake, read-only after it

	// haveVers is set once a version is agreed; records must then carry
	// 0x0303. Before that the client's first records say 0x0301, as
	// RFC 5246 §E.1 recommends for compatibility.
	haveVers bool

	in  halfConn
	out halfConn

	// Input: raw[rawR:rawW] holds bytes read but not yet processed.
	raw        []byte
	rawR, rawW int
	input      []byte // decrypted application data not yet returned; aliases raw
	hand       []byte // handshake bytes not yet consumed (reassembly buffer)

	emptyRecords  int // consecutive empty records (DoS bound)
	warnings      int // consecutive warning alerts (DoS bound)
	renegRefusals int

	// Output.
	outBuf    []byte // sealed records waiting to be written
	buffering bool   // collect a flight before writing

	activeCall      atomic.Int32 // Write/Close interlock: bit 0 closed, others count writes
	closeNotifySent bool

	serverAddr string // client: session cache key when ServerName is empty
}

// Server returns a server-side Conn over conn.
func Server(conn net.Conn, config *Config) *Conn {
	return &Conn{conn: conn, config: config}
}

// Client returns a client-side Conn over conn. config.ServerName must be
// set unless InsecureSkipVerify is.
func Client(conn net.Conn, config *Config) *Conn {
	c := &Conn{conn: conn, config: config, isClient: true}
	if conn.RemoteAddr() != nil {
		c.serverAddr = conn.RemoteAddr().String()
	}
	return c
}

// ---- net.Conn ----

// Handshake runs the handshake if it has not run yet. Cancelling ctx
// aborts it by closing the underlying connection.
func (c *Conn) Handshake(ctx context.Context) error {
	if c.handshakeDone.Load() {
		return nil
	}
	c.handshakeMu.Lock()
	defer c.handshakeMu.Unlock()
	if c.handshakeErr != nil {
		return c.handshakeErr
	}
	if c.handshakeDone.Load() {
		return nil
	}
	c.in.Lock()
	defer c.in.Unlock()

	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { c.conn.Close() })
	}
	var err error
	if c.isClient {
		err = c.clientHandshake()
	} else {
		err = c.serverHandshake()
	}
	if stop != nil && !stop() {
		err = fmt.Errorf("tlslite: handshake interrupted: %w", ctx.Err())
	}
	if err == nil && !c.handshakeDone.Load() {
		err = errors.New("tlslite: internal error: handshake did not complete")
	}
	if err != nil {
		c.handshakeErr = err
		c.out.Lock()
		c.out.setErr(err)
		c.out.Unlock()
		c.in.setErr(err)
	}
	return err
}

// Read reads application data, running the handshake first if needed.
func (c *Conn) Read(b []byte) (int, error) {
	if err := c.Handshake(context.Background()); err != nil {
		return 0, err
	}
	if len(b) == 0 {
		return 0, nil
	}
	c.in.Lock()
	defer c.in.Unlock()
	for len(c.input) == 0 {
		if err := c.readRecord(false); err != nil {
			return 0, err
		}
		if err := c.handlePostHandshake(); err != nil {
			return 0, err
		}
	}
	n := copy(b, c.input)
	c.input = c.input[n:]
	return n, nil
}

// handlePostHandshake deals with handshake messages after the handshake:
// RFC 5746 §4.2/§4.4 and RFC 5246 §7.4.1.1: renegotiation (a ClientHello to
// a server, a HelloRequest to a client) is refused with a no_renegotiation
// warning and the connection carries on; anything else is
// unexpected_message.
func (c *Conn) handlePostHandshake() error {
	for len(c.hand) >= 4 {
		n := int(c.hand[1])<<16 | int(c.hand[2])<<8 | int(c.hand[3])
		if n > maxHandshakeSize {
			return c.in.setErr(c.sendAlert(AlertIllegalParameter, fmt.Errorf("handshake message of %d bytes", n)))
		}
		if len(c.hand) < 4+n {
			return nil
		}
		typ := c.hand[0]
		c.observeMessage(false, c.hand[:4+n], func(m message) Event { return PostHandshakeMessageEvent{m} })
		c.hand = c.hand[4+n:]
		if (!c.isClient && typ == typeClientHello) || (c.isClient && typ == typeHelloRequest) {
			c.renegRefusals++
			if c.renegRefusals > maxWarningAlerts {
				return c.in.setErr(c.sendAlert(AlertUnexpectedMessage, errors.New("too many renegotiation attempts")))
			}
			c.out.Lock()
			c.sendAlertLocked(AlertNoRenegotiation, nil)
			err := c.out.err
			c.out.Unlock()
			if err != nil {
				return err
			}
			continue
		}
		return c.in.setErr(c.sendAlert(AlertUnexpectedMessage, fmt.Errorf("%s after the handshake", msgName(typ))))
	}
	return nil
}

var errShutdown = errors.New("tlslite: write after CloseWrite")

// Write writes application data, running the handshake first if needed.
func (c *Conn) Write(b []byte) (int, error) {
	for {
		x := c.activeCall.Load()
		if x&1 != 0 {
			return 0, net.ErrClosed
		}
		if c.activeCall.CompareAndSwap(x, x+2) {
			break
		}
	}
	defer c.activeCall.Add(-2)
	if err := c.Handshake(context.Background()); err != nil {
		return 0, err
	}
	c.out.Lock()
	defer c.out.Unlock()
	if c.out.err != nil {
		return 0, c.out.err
	}
	if c.closeNotifySent {
		return 0, errShutdown
	}
	return c.writeRecordLocked(recordTypeApplicationData, b)
}

// Close sends close_notify (if the handshake finished) and closes the
// underlying connection.
func (c *Conn) Close() error {
	var x int32
	for {
		x = c.activeCall.Load()
		if x&1 != 0 {
			return net.ErrClosed
		}
		if c.activeCall.CompareAndSwap(x, x|1) {
			break
		}
	}
	if x != 0 {
		// A Write is in flight: Close is being used to break it, so do not
		// wait for c.out to send close_notify.
		return c.conn.Close()
	}
	var alertErr error
	if c.handshakeDone.Load() {
		alertErr = c.closeNotify()
	}
	if err := c.conn.Close(); err != nil {
		return err
	}
	return alertErr
}

// CloseWrite sends close_notify (RFC 5246 §7.2.1) and half-closes the
// underlying connection if it supports that.
func (c *Conn) CloseWrite() error {
	if !c.handshakeDone.Load() {
		return errors.New("tlslite: CloseWrite before the handshake")
	}
	if err := c.closeNotify(); err != nil {
		return err
	}
	if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *Conn) closeNotify() error {
	c.out.Lock()
	defer c.out.Unlock()
	if c.closeNotifySent || c.out.err != nil {
		return nil
	}
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	c.closeNotifySent = true
	c.sendAlertLocked(AlertCloseNotify, nil)
	if c.out.err != nil {
		return c.out.err
	}
	c.out.err = errShutdown
	return nil
}

// ConnectionState reports the negotiated parameters.
func (c *Conn) ConnectionState() ConnectionState {
	c.handshakeMu.Lock()
	defer c.handshakeMu.Unlock()
	st := c.state
	st.HandshakeComplete = c.handshakeDone.Load()
	return st
}

// NetConn returns the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.conn }

func (c *Conn) LocalAddr() net.Addr                { return c.conn.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr               { return c.conn.RemoteAddr() }
func (c *Conn) SetDeadline(t time.Time) error      { return c.conn.SetDeadline(t) }
func (c *Conn) SetReadDeadline(t time.Time) error  { return c.conn.SetReadDeadline(t) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }
