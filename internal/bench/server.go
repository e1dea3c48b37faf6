package bench

import (
	"crypto/tls"
	"io"
	"log"
	"net"
	"time"

	"ustack/internal/services"
	"ustack/tlslite"
)

// The bench services: the same server code on every stack, given that
// stack's net.Listener for each port.
const (
	benchPortEcho    = 7    // RFC 862 echo
	benchPortDiscard = 9    // read until EOF, then close (upload)
	benchPortSource  = 19   // read an 8-byte big-endian count N, send N bytes, close (download)
	benchPortHTTP    = 80   // net/http, a small page
	benchPortHTTPS   = 443  // the same over TLS 1.2 (tlslite on ustack, crypto/tls elsewhere)
	benchPortIdle    = 5001 // accept and hold, for the idle-connection memory figure
)

// benchPage is the body of GET / on the HTTP and HTTPS services.
const benchPage = "hello from the ustack bench server: the same net/http handler on every stack\n"

// benchDiscardLog silences net/http's per-connection errors (TLS
// handshakes cut short by a client at the end of a timed run).
var benchDiscardLog = log.New(io.Discard, "", 0)

// benchListen opens a listener on a port of the stack under test.
type benchListen func(port uint16) (net.Listener, error)

// benchTLS wraps the HTTPS listener: tlslite for ustack, crypto/tls for the
// kernel and gVisor, both limited to TLS_RSA_WITH_AES_128_GCM_SHA256.
type benchTLS func(net.Listener) net.Listener

// startBenchServer runs the bench services on one stack, Nagle off.
func startBenchServer(listen benchListen, wrapTLS benchTLS) (*services.Server, error) {
	s := &services.Server{NoDelay: true, ErrorLog: benchDiscardLog, Grace: time.Second}
	for _, v := range []struct {
		port  uint16
		serve func(net.Listener)
	}{
		{benchPortEcho, s.Handle(services.Echo)},
		{benchPortDiscard, s.Handle(services.Discard)},
		{benchPortSource, s.Handle(services.Sized)},
		{benchPortHTTP, func(l net.Listener) { s.HTTP(l, benchPage) }},
		{benchPortHTTPS, func(l net.Listener) { s.HTTP(wrapTLS(l), benchPage) }},
		{benchPortIdle, s.Hold},
	} {
		l, err := listen(v.port)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.Go(l, v.serve)
	}
	return s, nil
}

// tlsliteWrap serves TLS with tlslite, RSA key exchange only.
func tlsliteWrap(d *tlslite.Dir) benchTLS {
	cfg := &tlslite.Config{Certificates: []tlslite.Certificate{d.Certificate}, KeyExchange: tlslite.KeyExchangeRSA}
	return func(l net.Listener) net.Listener { return tlslite.NewListener(l, cfg) }
}

// cryptoTLSWrap serves TLS 1.2 with crypto/tls and the one suite tlslite
// has: TLS_RSA_WITH_AES_128_GCM_SHA256.
func cryptoTLSWrap(d *tlslite.Dir) benchTLS {
	cfg := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: d.Certificate.Chain, PrivateKey: d.Certificate.PrivateKey}},
		MinVersion:   tls.VersionTLS12,
		MaxVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256},
	}
	return func(l net.Listener) net.Listener { return tls.NewListener(l, cfg) }
}
