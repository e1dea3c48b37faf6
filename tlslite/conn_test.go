package tlslite

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// pair makes a tlslite client and server over loopback TCP and runs the
// handshake.
func pair(t *testing.T, ccfg, scfg *Config) (*Conn, *Conn, error, error) {
	t.Helper()
	cr, sr := tcpPair(t)
	cli, srv := Client(cr, ccfg), Server(sr, scfg)
	cerr, serr := handshakePair(t, cli, srv)
	return cli, srv, cerr, serr
}

func mustPair(t *testing.T, ccfg, scfg *Config) (*Conn, *Conn) {
	t.Helper()
	cli, srv, cerr, serr := pair(t, ccfg, scfg)
	if cerr != nil || serr != nil {
		t.Fatalf("handshake: client %v, server %v", cerr, serr)
	}
	return cli, srv
}

func TestSelfAllSuites(t *testing.T) {
	for _, suite := range allSuites {
		t.Run(CipherSuiteName(suite), func(t *testing.T) {
			scfg := serverConfig(t)
			scfg.CipherSuites = []uint16{suite}
			cli, srv := mustPair(t, clientConfig(t), scfg)
			st := cli.ConnectionState()
			if st.CipherSuite != suite || !st.ExtendedMasterSecret || !st.SecureRenegotiation || st.ServerName != "localhost" {
				t.Fatalf("client state %+v", st)
			}
			if srv.ConnectionState().ServerName != "localhost" {
				t.Fatal("server did not see SNI")
			}
			if (suite == TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 || suite == TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) != (st.CurveID == X25519) {
				t.Fatalf("curve %v", st.CurveID)
			}
			// Bigger than one record, to exercise fragmentation.
			big := bytes.Repeat([]byte("0123456789abcdef"), 5000)
			exchange(t, cli, srv, big)
			exchange(t, srv, cli, big)
		})
	}
}

// TestKeyExchangeOption: KeyExchangeRSA restricts the server to RSA key
// exchange (the CLI's --kex rsa); the default prefers ECDHE when offered.
func TestKeyExchangeOption(t *testing.T) {
	for _, tc := range []struct {
		kex  KeyExchange
		want uint16
	}{
		{KeyExchangeAny, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
		{KeyExchangeRSA, TLS_RSA_WITH_AES_128_GCM_SHA256},
		{KeyExchangeECDHE, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
	} {
		scfg := serverConfig(t)
		scfg.KeyExchange = tc.kex
		cli, _ := mustPair(t, clientConfig(t), scfg)
		if got := cli.ConnectionState().CipherSuite; got != tc.want {
			t.Errorf("kex %v: got %s", tc.kex, CipherSuiteName(got))
		}
	}
	// The server's order decides.
	scfg := serverConfig(t)
	scfg.CipherSuites = []uint16{TLS_RSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
	cli, _ := mustPair(t, clientConfig(t), scfg)
	if got := cli.ConnectionState().CipherSuite; got != TLS_RSA_WITH_AES_256_GCM_SHA384 {
		t.Errorf("server order ignored: %s", CipherSuiteName(got))
	}
	// A P-256-only client.
	ccfg := clientConfig(t)
	ccfg.CurvePreferences = []CurveID{CurveP256}
	cli, _ = mustPair(t, ccfg, serverConfig(t))
	if cli.ConnectionState().CurveID != CurveP256 {
		t.Errorf("curve %v", cli.ConnectionState().CurveID)
	}
	if k, ok := ParseKeyExchange("rsa"); !ok || k != KeyExchangeRSA {
		t.Error("ParseKeyExchange")
	}
}

func TestResumptionSessionID(t *testing.T) {
	scfg := serverConfig(t)
	ccfg := clientConfig(t)
	ccfg.SessionTicketsDisabled = true
	ccfg.ClientSessionCache = NewLRUClientSessionCache(8)
	for i := 0; i < 3; i++ {
		cli, srv := mustPair(t, ccfg, scfg)
		cs, ss := cli.ConnectionState(), srv.ConnectionState()
		if cs.DidResume != (i > 0) || ss.DidResume != (i > 0) || ss.ResumedWithTicket {
			t.Fatalf("conn %d: client %v server %v (ticket %v)", i, cs.DidResume, ss.DidResume, ss.ResumedWithTicket)
		}
		if len(cs.PeerCertificates) == 0 {
			t.Fatal("resumed connection lost the peer certificates")
		}
		exchange(t, cli, srv, []byte("resumed"))
	}
}

func TestResumptionTicket(t *testing.T) {
	scfg := serverConfig(t)
	scfg.SessionCacheSize = -1
	ccfg := clientConfig(t)
	ccfg.ClientSessionCache = NewLRUClientSessionCache(8)
	for i := 0; i < 3; i++ {
		cli, srv := mustPair(t, ccfg, scfg)
		cs, ss := cli.ConnectionState(), srv.ConnectionState()
		if cs.DidResume != (i > 0) || ss.DidResume != (i > 0) || (i > 0 && !ss.ResumedWithTicket) {
			t.Fatalf("conn %d: client %v server %v", i, cs.DidResume, ss.DidResume)
		}
		exchange(t, cli, srv, []byte("resumed"))
	}
}

// TestSessionCacheLRU: the server's session-ID cache is bounded and evicts
// the least recently used entry.
func TestSessionCacheLRU(t *testing.T) {
	sc := newSessionCache(2)
	s := &sessionState{}
	sc.put("a", s)
	sc.put("b", s)
	sc.get("a")
	sc.put("c", s)
	if sc.get("b") != nil || sc.get("a") == nil || sc.get("c") == nil || sc.len() != 2 {
		t.Fatal("LRU eviction wrong")
	}
	cc := NewLRUClientSessionCache(1)
	cc.Put("x", &ClientSessionState{})
	cc.Put("y", &ClientSessionState{})
	if _, ok := cc.Get("x"); ok {
		t.Fatal("client cache not bounded")
	}
	cc.Put("y", nil)
	if _, ok := cc.Get("y"); ok {
		t.Fatal("Put nil did not delete")
	}
}

// TestTicketKeyRotation: with an injected clock, a new ticket key appears
// every rotation period; tickets sealed by an old key still resume until
// rotation + lifetime, and not after.
func TestTicketKeyRotation(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	scfg := serverConfig(t)
	scfg.Time = clock
	scfg.SessionCacheSize = -1
	scfg.TicketKeyRotation = time.Hour
	scfg.SessionLifetime = 2 * time.Hour
	ccfg := clientConfig(t)
	ccfg.ClientSessionCache = NewLRUClientSessionCache(8)
	ccfg.Time = func() time.Time { return time.Now() } // real time for the certificate

	cli, _ := mustPair(t, ccfg, scfg)
	if cli.ConnectionState().DidResume {
		t.Fatal("first connection resumed")
	}
	st, _ := ccfg.ClientSessionCache.Get("localhost")
	first := st.Ticket
	advance(90 * time.Minute) // key rotated; the old one still opens
	cli, _ = mustPair(t, ccfg, scfg)
	if !cli.ConnectionState().DidResume {
		t.Fatal("ticket from the previous key not accepted")
	}
	if n := len(scfg.server().ticketKeys); n != 2 {
		t.Fatalf("%d ticket keys, want 2", n)
	}
	// Replay the first ticket after its key expired.
	advance(2 * time.Hour)
	ccfg.ClientSessionCache.Put("localhost", &ClientSessionState{Ticket: first, Version: VersionTLS12,
		CipherSuite: st.CipherSuite, ExtendedMasterSecret: true, masterSecret: st.masterSecret, ReceivedAt: time.Now()})
	cli, _ = mustPair(t, ccfg, scfg)
	if cli.ConnectionState().DidResume {
		t.Fatal("ticket sealed by an expired key accepted")
	}
}

func TestALPN(t *testing.T) {
	scfg := serverConfig(t)
	scfg.NextProtos = []string{"http/1.1"}
	ccfg := clientConfig(t)
	ccfg.NextProtos = []string{"h2", "http/1.1"}
	cli, srv := mustPair(t, ccfg, scfg)
	if cli.ConnectionState().NegotiatedProtocol != "http/1.1" || srv.ConnectionState().NegotiatedProtocol != "http/1.1" {
		t.Fatal("ALPN did not select http/1.1")
	}
	// RFC 7301 §3.2: nothing in common is refused with
	// no_application_protocol.
	ccfg.NextProtos = []string{"h2"}
	_, _, cerr, serr := pair(t, ccfg, scfg)
	if !errors.Is(cerr, AlertNoApplicationProtocol) || !errors.Is(serr, AlertNoApplicationProtocol) {
		t.Fatalf("client %v, server %v", cerr, serr)
	}
	// crypto/tls sees the same alert.
	cr, sr := tcpPair(t)
	gc := tls.Client(cr, &tls.Config{RootCAs: pki(t).roots, ServerName: "localhost", NextProtos: []string{"h2"}})
	cerr, _ = handshakePair(t, goConn{gc}, Server(sr, scfg))
	if cerr == nil || !strings.Contains(cerr.Error(), "no application protocol") {
		t.Fatalf("crypto/tls: %v", cerr)
	}
}

// TestExtendedMasterSecretRequired: RFC 7627 §5.4, our client refuses a
// server that does not negotiate EMS unless told otherwise.
func TestExtendedMasterSecretRequired(t *testing.T) {
	scfg := serverConfig(t)
	scfg.testHooks = &testHooks{noEMS: true}
	_, _, cerr, _ := pair(t, clientConfig(t), scfg)
	var ae *AlertError
	if !errors.As(cerr, &ae) || ae.Alert != AlertHandshakeFailure || !ae.Sent || !strings.Contains(cerr.Error(), "extended master secret") {
		t.Fatalf("client: %v", cerr)
	}
	ccfg := clientConfig(t)
	ccfg.AllowNoExtendedMasterSecret = true
	cli, _ := mustPair(t, ccfg, scfg)
	if cli.ConnectionState().ExtendedMasterSecret {
		t.Fatal("EMS reported")
	}
}

// TestDowngradeSentinel: RFC 8446 §4.1.3. By default the server does not
// set the sentinel (it is not a TLS 1.3 server), so TLS 1.3 clients accept
// TLS 1.2; with DowngradeSentinel set, a TLS 1.3 client detects the
// "downgrade" and aborts.
func TestDowngradeSentinel(t *testing.T) {
	scfg := serverConfig(t)
	gcfg := &tls.Config{RootCAs: pki(t).roots, ServerName: "localhost"} // offers 1.3
	cr, sr := tcpPair(t)
	gc, srv := tls.Client(cr, gcfg), Server(sr, scfg)
	if cerr, serr := handshakePair(t, goConn{gc}, srv); cerr != nil || serr != nil {
		t.Fatalf("client %v server %v", cerr, serr)
	}
	if !srv.ConnectionState().ClientOfferedTLS13 || gc.ConnectionState().Version != tls.VersionTLS12 {
		t.Fatal("not negotiated down to 1.2")
	}
	scfg = serverConfig(t)
	scfg.DowngradeSentinel = true
	cr, sr = tcpPair(t)
	gc = tls.Client(cr, gcfg)
	cerr, _ := handshakePair(t, goConn{gc}, Server(sr, scfg))
	if cerr == nil || !strings.Contains(cerr.Error(), "downgrade") {
		t.Fatalf("crypto/tls did not detect the sentinel: %v", cerr)
	}
	// Our client offers only 1.2, so DOWNGRD\x01 is legitimate for it.
	mustPair(t, clientConfig(t), scfg)
}

// TestRenegotiationRefusedConnectionContinues: a renegotiation ClientHello
// on an established connection gets a no_renegotiation warning (RFC 5746
// §4.4) and the connection keeps working.
func TestRenegotiationRefusedConnectionContinues(t *testing.T) {
	ccfg := clientConfig(t)
	var warned sync.WaitGroup
	warned.Add(1)
	ccfg.Observer = func(e Event) {
		if a, ok := e.(AlertEvent); ok && !a.Sent() && a.Alert == AlertNoRenegotiation && a.Level == AlertLevelWarning {
			warned.Done()
		}
	}
	cli, srv := mustPair(t, ccfg, serverConfig(t))
	hello := &clientHelloMsg{helloMsg: helloMsg{vers: VersionTLS12, random: make([]byte, 32),
		secureRenegotiationSupported: true, secureRenegotiation: make([]byte, 12)},
		cipherSuites: []uint16{TLS_RSA_WITH_AES_128_GCM_SHA256}, compressionMethods: []uint8{0}}
	raw, _ := hello.marshal()
	cli.out.Lock()
	_, err := cli.writeRecordLocked(recordTypeHandshake, raw)
	cli.out.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	// The server processes the ClientHello while reading; then data flows
	// both ways on the same connection.
	exchange(t, cli, srv, []byte("after renegotiation attempt"))
	exchange(t, srv, cli, []byte("still serving"))
	warned.Wait()
}

// TestHelloRequestRefusedByClient: a HelloRequest (RFC 5246 §7.4.1.1, an
// empty body) on an established connection asks the client to renegotiate;
// the client answers with a no_renegotiation warning (RFC 5746 §4.2) and
// the connection keeps working.
func TestHelloRequestRefusedByClient(t *testing.T) {
	scfg := serverConfig(t)
	var warned sync.WaitGroup
	warned.Add(1)
	scfg.Observer = func(e Event) {
		if a, ok := e.(AlertEvent); ok && !a.Sent() && a.Alert == AlertNoRenegotiation && a.Level == AlertLevelWarning {
			warned.Done()
		}
	}
	cli, srv := mustPair(t, clientConfig(t), scfg)
	srv.out.Lock()
	_, err := srv.writeRecordLocked(recordTypeHandshake, []byte{typeHelloRequest, 0, 0, 0})
	srv.out.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	// The client processes the HelloRequest while reading; then data flows
	// both ways on the same connection.
	exchange(t, srv, cli, []byte("after hello request"))
	exchange(t, cli, srv, []byte("still talking"))
	warned.Wait()
}

// TestListen: Listen, the counterpart of crypto/tls.Listen, hands out
// server-side *Conn values that complete a handshake with our Dialer and
// carry data; with no NextProtos configured it selects http/1.1 by ALPN.
func TestListen(t *testing.T) {
	l, err := Listen("tcp", "127.0.0.1:0", serverConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			err = c.(*Conn).Handshake(ctx)
		}
		ch <- accepted{c, err}
	}()
	ccfg := clientConfig(t)
	ccfg.NextProtos = []string{"h2", "http/1.1"}
	cli, err := (&Dialer{Config: ccfg}).DialContext(ctx, "tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	a := <-ch
	if a.err != nil {
		t.Fatal(a.err)
	}
	defer a.c.Close()
	if p := cli.(*Conn).ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Fatalf("ALPN chose %q, want http/1.1", p)
	}
	exchange(t, cli, a.c, []byte("ping"))
	exchange(t, a.c, cli, []byte("pong"))
}

// TestHTTPOverListenerAndDialer: net/http server on NewListener, client
// through http.Transport.DialTLSContext with our Dialer over a custom
// inner dial function.
func TestHTTPOverListenerAndDialer(t *testing.T) {
	addr := startHTTPS(t, serverConfig(t))
	var dials int
	d := &Dialer{Config: &Config{RootCAs: pki(t).roots, ClientSessionCache: NewLRUClientSessionCache(4)},
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials++
			return new(net.Dialer).DialContext(ctx, network, addr)
		}}
	for i := 0; i < 2; i++ {
		tr := &http.Transport{DialTLSContext: d.DialContext}
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + addr + "/dialer")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		if resp.StatusCode != 200 || string(body) != "hello /dialer\n" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	}
	if dials != 2 {
		t.Fatalf("inner dial used %d times", dials)
	}
}

// TestHandshakeContextCancel: a cancelled context aborts a stuck handshake.
func TestHandshakeContextCancel(t *testing.T) {
	cr, _ := tcpPair(t) // the server never answers
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := Client(cr, clientConfig(t)).Handshake(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
}

// TestCloseNotify: close_notify in both directions turns into io.EOF.
func TestCloseNotify(t *testing.T) {
	cli, srv := mustPair(t, clientConfig(t), serverConfig(t))
	if err := cli.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("server read: %v", err)
	}
	exchange(t, srv, cli, []byte("half-closed: server can still write"))
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("client read: %v", err)
	}
	if _, err := cli.Write([]byte("x")); err == nil {
		t.Fatal("write after CloseWrite succeeded")
	}
}

// TestNetPipe: the Conn works over an in-memory net.Pipe too.
func TestNetPipe(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	cli, srv := Client(a, clientConfig(t)), Server(b, serverConfig(t))
	if cerr, serr := handshakePair(t, cli, srv); cerr != nil || serr != nil {
		t.Fatal(cerr, serr)
	}
	exchange(t, cli, srv, []byte("over a pipe"))
}

// TestLoadOrCreateDir: the first call creates ca.pem, cert.pem and
// key.pem; the second loads the same; a client trusting ca.pem connects
// by IP.
func TestLoadOrCreateDir(t *testing.T) {
	dir := t.TempDir()
	ips := []net.IP{net.IPv4(127, 0, 0, 1)}
	d1, err := LoadOrCreateDir(dir, ips, []string{"localhost"})
	if err != nil || !d1.Created {
		t.Fatalf("create: %v", err)
	}
	d2, err := LoadOrCreateDir(dir, ips, []string{"localhost"})
	if err != nil || d2.Created || !bytes.Equal(d2.Certificate.Chain[0], d1.Certificate.Chain[0]) || !d2.CA.Equal(d1.CA) {
		t.Fatalf("reload: %v", err)
	}
	if d2.Certificate.PrivateKey.N.BitLen() != 2048 {
		t.Fatal("leaf key is not RSA-2048")
	}
	cli, _ := mustPair(t, &Config{RootCAs: d2.Roots, ServerName: "127.0.0.1"}, &Config{Certificates: []Certificate{d2.Certificate}})
	if len(cli.ConnectionState().VerifiedChains) == 0 {
		t.Fatal("chain not verified")
	}
}
