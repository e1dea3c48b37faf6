package tlslite

// net.Listener and dialer adapters, so that net/http serves HTTPS on any
// listener and http.Transport.DialTLSContext can use tlslite over any
// transport.

import (
	"context"
	"net"
)

type listener struct {
	net.Listener
	config *Config
}

// NewListener wraps inner so that Accept returns server-side *Conn values
// (as net.Conn). The handshake runs on the first Read or Write, which is
// what net/http's Server does. If config.NextProtos is empty, ALPN selects
// http/1.1.
func NewListener(inner net.Listener, config *Config) net.Listener {
	if len(config.NextProtos) == 0 {
		config = config.Clone()
		config.NextProtos = []string{"http/1.1"}
	}
	return &listener{Listener: inner, config: config}
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Server(c, l.config), nil
}

// Listen listens on network/addr with net.Listen and wraps it.
func Listen(network, addr string, config *Config) (net.Listener, error) {
	l, err := net.Listen(network, addr)
	if err != nil {
		return nil, err
	}
	return NewListener(l, config), nil
}

// Dialer dials TLS connections over any transport; DialContext completes
// the handshake before returning, as http.Transport.DialTLSContext expects.
type Dialer struct {
	// Config is the client configuration; if its ServerName is empty, the
	// host part of addr is used.
	Config *Config
	// Dial opens the underlying connection; nil means a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// DialContext connects to addr and runs the handshake under ctx.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	dial := d.Dial
	if dial == nil {
		dial = new(net.Dialer).DialContext
	}
	raw, err := dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cfg := d.Config
	if cfg == nil {
		cfg = &Config{}
	}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	c := Client(raw, cfg)
	if err := c.Handshake(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}
