package tlslite

import (
	"crypto/tls"
	"fmt"
	"testing"
)

var allSuites = []uint16{
	TLS_RSA_WITH_AES_128_GCM_SHA256,
	TLS_RSA_WITH_AES_256_GCM_SHA384,
	TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
}

// TestInteropGoClient: crypto/tls client, tlslite server, every suite,
// full handshake then ticket resumption, with EMS.
func TestInteropGoClient(t *testing.T) {
	for _, suite := range allSuites {
		t.Run(CipherSuiteName(suite), func(t *testing.T) {
			scfg := serverConfig(t)
			ccfg := &tls.Config{
				MaxVersion:         tls.VersionTLS12,
				CipherSuites:       []uint16{suite},
				RootCAs:            pki(t).roots,
				ServerName:         "localhost",
				ClientSessionCache: tls.NewLRUClientSessionCache(4),
			}
			for i, wantResume := range []bool{false, true} {
				cr, sr := tcpPair(t)
				cli := tls.Client(cr, ccfg)
				srv := Server(sr, scfg)
				cerr, serr := handshakePair(t, goConn{cli}, srv)
				if cerr != nil || serr != nil {
					t.Fatalf("conn %d: client %v, server %v", i, cerr, serr)
				}
				cs, ss := cli.ConnectionState(), srv.ConnectionState()
				if cs.CipherSuite != suite || ss.CipherSuite != suite {
					t.Fatalf("suite %#x/%#x", cs.CipherSuite, ss.CipherSuite)
				}
				if !cs.DidResume != !wantResume || ss.DidResume != wantResume {
					t.Fatalf("conn %d: resume client %v server %v, want %v", i, cs.DidResume, ss.DidResume, wantResume)
				}
				if wantResume && !ss.ResumedWithTicket {
					t.Fatalf("resumption not by ticket")
				}
				if !ss.ExtendedMasterSecret {
					t.Fatal("no EMS")
				}
				exchange(t, cli, srv, []byte("hello from crypto/tls"))
				exchange(t, srv, cli, []byte("hello from tlslite"))
			}
		})
	}
}

// TestInteropGoServer: tlslite client, crypto/tls server, every suite, full
// then ticket resumption, with EMS.
func TestInteropGoServer(t *testing.T) {
	for _, suite := range allSuites {
		t.Run(CipherSuiteName(suite), func(t *testing.T) {
			scfg := &tls.Config{
				MaxVersion:   tls.VersionTLS12,
				CipherSuites: []uint16{suite},
				Certificates: []tls.Certificate{pki(t).goCert},
			}
			ccfg := clientConfig(t)
			ccfg.ClientSessionCache = NewLRUClientSessionCache(4)
			ccfg.CipherSuites = []uint16{suite}
			for i, wantResume := range []bool{false, true} {
				cr, sr := tcpPair(t)
				cli := Client(cr, ccfg)
				srv := tls.Server(sr, scfg)
				cerr, serr := handshakePair(t, cli, goConn{srv})
				if cerr != nil || serr != nil {
					t.Fatalf("conn %d: client %v, server %v", i, cerr, serr)
				}
				cs, ss := cli.ConnectionState(), srv.ConnectionState()
				if cs.CipherSuite != suite || ss.CipherSuite != suite {
					t.Fatalf("suite %#x/%#x", cs.CipherSuite, ss.CipherSuite)
				}
				if cs.DidResume != wantResume || ss.DidResume != wantResume {
					t.Fatalf("conn %d: resume client %v server %v, want %v", i, cs.DidResume, ss.DidResume, wantResume)
				}
				if !cs.ExtendedMasterSecret {
					t.Fatal("no EMS")
				}
				exchange(t, cli, srv, []byte(fmt.Sprint("hello from tlslite ", i)))
				exchange(t, srv, cli, []byte("hello from crypto/tls"))
			}
		})
	}
}
