package tlslite

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
)

// Benchmarks compare tlslite with crypto/tls in the same run, over
// net.Pipe, with the same RSA-2048 certificate; both clients verify the
// chain.

type hsConn interface {
	net.Conn
	Handshake(context.Context) error
}

type benchImpl struct {
	name string
	// pair returns a fresh client and server over c/s.
	pair func(c, s net.Conn) (hsConn, hsConn)
}

func benchImpls(b *testing.B, suite uint16, resume bool) []benchImpl {
	p := pki(b)
	scfg := serverConfig(b)
	scfg.CipherSuites = []uint16{suite}
	ccfg := clientConfig(b)
	ccfg.CipherSuites = []uint16{suite}
	gs := &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}, Certificates: []tls.Certificate{p.goCert}}
	gc := &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}, RootCAs: p.roots, ServerName: "localhost"}
	if resume {
		ccfg.ClientSessionCache = NewLRUClientSessionCache(4)
		gc.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	} else {
		scfg.SessionTicketsDisabled, scfg.SessionCacheSize = true, -1
		gs.SessionTicketsDisabled = true
	}
	return []benchImpl{
		{"tlslite", func(c, s net.Conn) (hsConn, hsConn) { return Client(c, ccfg), Server(s, scfg) }},
		{"cryptotls", func(c, s net.Conn) (hsConn, hsConn) { return goConn{tls.Client(c, gc)}, goConn{tls.Server(s, gs)} }},
	}
}

func benchHandshake(b *testing.B, suite uint16, resume bool) {
	for _, impl := range benchImpls(b, suite, resume) {
		b.Run(impl.name, func(b *testing.B) {
			if resume { // prime the session cache
				c, s := net.Pipe()
				cli, srv := impl.pair(c, s)
				if cerr, serr := handshakePair(b, cli, srv); cerr != nil || serr != nil {
					b.Fatal(cerr, serr)
				}
				c.Close()
				s.Close()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c, s := net.Pipe()
				cli, srv := impl.pair(c, s)
				errc := make(chan error, 1)
				go func() { errc <- srv.Handshake(context.Background()) }()
				if err := cli.Handshake(context.Background()); err != nil {
					b.Fatal(err)
				}
				if err := <-errc; err != nil {
					b.Fatal(err)
				}
				c.Close()
				s.Close()
			}
		})
	}
}

func BenchmarkHandshakeRSA(b *testing.B) {
	benchHandshake(b, TLS_RSA_WITH_AES_128_GCM_SHA256, false)
}

func BenchmarkHandshakeECDHE(b *testing.B) {
	benchHandshake(b, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, false)
}

func BenchmarkHandshakeResumed(b *testing.B) {
	benchHandshake(b, TLS_RSA_WITH_AES_128_GCM_SHA256, true)
}

func BenchmarkBulk(b *testing.B) {
	const chunk = 64 << 10
	for _, suite := range []uint16{TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384} {
		for _, impl := range benchImpls(b, suite, false) {
			b.Run(CipherSuiteName(suite)[len("TLS_ECDHE_RSA_WITH_"):]+"/"+impl.name, func(b *testing.B) {
				c, s := net.Pipe()
				defer c.Close()
				defer s.Close()
				cli, srv := impl.pair(c, s)
				if cerr, serr := handshakePair(b, cli, srv); cerr != nil || serr != nil {
					b.Fatal(cerr, serr)
				}
				buf := make([]byte, chunk)
				done := make(chan error, 1)
				go func() {
					rb := make([]byte, chunk)
					_, err := io.ReadFull(srv, make([]byte, 0))
					for n := 0; n < b.N*chunk && err == nil; {
						var m int
						m, err = srv.Read(rb)
						n += m
					}
					done <- err
				}()
				b.SetBytes(chunk)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := cli.Write(buf); err != nil {
						b.Fatal(err)
					}
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}
