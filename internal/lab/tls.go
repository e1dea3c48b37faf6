package lab

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"ustack/internal/ladder"
	"ustack/internal/record"
	"ustack/stack"
	"ustack/stack/header"
	"ustack/stack/link"
	"ustack/stack/tcp"
	"ustack/tlslite"
)

// labTLSEnv is where a TLS lab runs: a server stack listening on
// the run's server address, and a way for the client to open a TCP connection to it.
type labTLSEnv struct {
	srv  *stack.Stack
	ln   *stack.Listener
	dial func(ctx context.Context) (net.Conn, error)
	who  string // the client's TCP, for the ladder's header
}

// client opens the client's TCP connection and a TLS client on it, with
// 10 s to finish; the function returned closes both.
func (env *labTLSEnv) client(cfg *tlslite.Config) (*tlslite.Conn, context.Context, func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	raw, err := env.dial(ctx)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	return tlslite.Client(raw, cfg), ctx, func() { raw.Close(); cancel() }, nil
}

// tlsEnvMem joins a client and a server stack with a Pipe, in real time
// (TLS needs no timers, and its blocking API wants goroutines).
func (r *labRun) tlsEnvMem() (*labTLSEnv, func(), error) { return r.tlsEnvMemWith(0, tcp.Config{}) }

// tlsEnvMemWith is tlsEnvMem with the server's packets held delay in the
// network and both stacks on cfg.
func (r *labRun) tlsEnvMemWith(delay time.Duration, cfg tcp.Config) (*labTLSEnv, func(), error) {
	r.setQuiet(true)
	r.newLadder(time.Now)
	a, b := link.Pipe(1500)
	var srvEnd link.Endpoint = b
	if delay > 0 {
		srvEnd = link.Impair(b, link.ImpairConfig{Rule: func(dir link.Direction, _ []byte) link.Action {
			if dir == link.Out {
				return link.Delay(delay)
			}
			return link.Pass
		}})
	}
	srv, err := stack.New(&labTap{Endpoint: srvEnd, r: r}, stack.Options{Addr: r.fam.server.Addr(), Trace: r.trace, TCP: cfg})
	if err != nil {
		return nil, nil, err
	}
	cli, err := stack.New(&labTap{Endpoint: a, r: r, toServer: true}, stack.Options{Addr: r.fam.client, Trace: r.trace, TCP: cfg})
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	ln, err := srv.ListenTCP(labPort)
	if err != nil {
		cli.Close()
		srv.Close()
		return nil, nil, err
	}
	env := &labTLSEnv{srv: srv, ln: ln, who: "ustack",
		dial: func(ctx context.Context) (net.Conn, error) { return cli.DialTCP(ctx, r.fam.server) }}
	return env, func() { cli.Close(); srv.Close() }, nil
}

// tlsStory runs a TLS lab's story in the environment env makes.
func tlsStory(env func(*labRun) (*labTLSEnv, func(), error), story func(*labRun, *labTLSEnv) error) func(*labRun) error {
	return func(r *labRun) error {
		e, done, err := env(r)
		if done != nil {
			defer done()
		}
		if err != nil {
			return err
		}
		return story(r, e)
	}
}

// labTLSObserver draws the TLS messages one side sees and keeps the values.
type labTLSObserver struct {
	r      *labRun
	client bool
	draw   bool // draw the messages (the client's observer does)
	steps  bool // narrate the eight steps (https-rsa)
	mu     sync.Mutex
	ev     []tlslite.Event
}

func (o *labTLSObserver) observe(e tlslite.Event) {
	o.mu.Lock()
	o.ev = append(o.ev, e)
	o.mu.Unlock()
	r := o.r
	if k, ok := e.(tlslite.KeysEvent); ok && !o.client && o.steps && len(k.PreMasterSecret) > 0 {
		r.say("[5] the server decrypts it with its private key: %s, the same 48 bytes", short(k.PreMasterSecret))
	}
	if !o.draw {
		return
	}
	toServer := e.Sent() == o.client
	switch e := e.(type) {
	case tlslite.HandshakeEvent:
		r.l.TLSArrow(toServer, e.Message(), "TLS "+e.Message(), 0)
		if !o.steps {
			return
		}
		switch e := e.(type) {
		case tlslite.ClientHelloEvent:
			r.say("[3] client random: 32 bytes %s", short(e.Random))
		case tlslite.ServerHelloEvent:
			r.say("[4] server random: 32 bytes %s; suite %s (RSA key exchange)", short(e.Random), tlslite.CipherSuiteName(e.CipherSuite))
		case tlslite.CertificateEvent:
			if len(e.Certificates) > 0 {
				c := e.Certificates[0]
				r.say("[2] certificate: %s, RSA public key %s, signed by %q", labCertName(c), labPubKey(c), c.Issuer.CommonName)
			}
		case tlslite.FinishedEvent:
			r.say("[7] Finished: verify_data %s, a hash of every handshake message, already encrypted with the new keys", short(e.VerifyData))
		}
	case tlslite.ChangeCipherSpecEvent:
		r.l.TLSArrow(toServer, "ChangeCipherSpec", "TLS ChangeCipherSpec", 0)
	case tlslite.AlertEvent:
		r.l.TLSArrow(toServer, "Alert", "TLS alert "+e.Alert.String(), 0)
	case tlslite.ApplicationDataEvent:
		what := r.T("encrypted request")
		if !toServer {
			what = r.T("encrypted response")
		}
		r.l.TLSArrow(toServer, "ApplicationData", fmt.Sprintf("TLS %s, %d bytes", what, len(e.Record)), len(e.Record))
		if !o.steps {
			return
		}
		if len(e.Record) > 13 {
			r.say("[8] an AES-GCM record, seq %d: nonce %x, ciphertext %s", e.Seq, e.Record[5:13], short(e.Record[13:]))
		}
	case tlslite.KeysEvent:
		if !o.steps {
			return
		}
		// tlslite reports the pre-master secret with the keys, right after
		// the ClientKeyExchange that carried it.
		if o.client && len(e.PreMasterSecret) > 0 {
			cke, _ := labFind[tlslite.ClientKeyExchangeEvent](o)
			r.say("[5] the client makes a 48-byte pre-master secret %s (it starts with the version, 03 03)", short(e.PreMasterSecret))
			r.say("[5] and encrypts it with the server's public key: %d bytes %s", len(cke.EncryptedPreMaster), short(cke.EncryptedPreMaster))
		}
		if e.ExtendedMasterSecret {
			r.say("[6] master secret = PRF(pre-master, \"extended master secret\", hash of the handshake so far, both randoms included) = %s", short(e.MasterSecret))
		} else {
			r.say("[6] master secret = PRF(pre-master, \"master secret\", client random + server random) = %s", short(e.MasterSecret))
		}
		if e.Keys != nil {
			r.say("[6] session keys = PRF(master, \"key expansion\", server random + client random): client write key %s, server write key %s, IVs %x, %x",
				short(e.Keys.ClientKey), short(e.Keys.ServerKey), e.Keys.ClientIV, e.Keys.ServerIV)
		}
	}
}

// labFind returns the first event of type T the observer kept.
func labFind[T tlslite.Event](o *labTLSObserver) (T, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range o.ev {
		if t, ok := e.(T); ok {
			return t, true
		}
	}
	var zero T
	return zero, false
}

func labCertName(c *x509.Certificate) string {
	var n []string
	for _, ip := range c.IPAddresses {
		n = append(n, ip.String())
	}
	n = append(n, c.DNSNames...)
	return "CN=" + c.Subject.CommonName + " [" + strings.Join(n, ",") + "]"
}

func labPubKey(c *x509.Certificate) string {
	if k, ok := c.PublicKey.(*rsa.PublicKey); ok {
		return fmt.Sprintf("(%d bits) n=%s e=%d", k.N.BitLen(), short(k.N.Bytes()), k.E)
	}
	return "?"
}

// tlsLadder starts the ladder of a TLS story afresh and returns the
// client's trusted roots: ca alone.
func (r *labRun) tlsLadder(env *labTLSEnv, ca *tlslite.CA) *x509.CertPool {
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	r.l.Restart(r.fam.server.String(), "", "")
	r.l.Header("client ("+env.who+" TCP, tlslite)", "server (ustack "+r.fam.server.String()+", tlslite)")
	return roots
}

// labCA makes the lab's trusted CA and a leaf key shared by its leaves.
func labCA(name string) (*tlslite.CA, error) { return tlslite.NewCA(name, nil) }

// httpsRSA tells the eight steps and proves them.
func (r *labRun) httpsRSA(env *labTLSEnv) error {
	ca, err := labCA("ustack lab CA")
	if err != nil {
		return err
	}
	cert, err := ca.Issue([]net.IP{net.IP(r.fam.server.Addr().AsSlice())}, nil, nil)
	if err != nil {
		return err
	}
	roots := r.tlsLadder(env, ca)
	key := cert.PrivateKey
	r.say("[1] the server's key pair: RSA-%d, public n=%s e=%d; the private key d=%s… never leaves the server",
		key.N.BitLen(), short(key.N.Bytes()), key.E, short(key.D.Bytes())[:16])
	r.say("    the CA %q signed a certificate binding that public key to %v; the client trusts that CA", ca.Cert.Subject.CommonName, r.fam.server.Addr())
	r.say("(the TCP handshake runs first, as in lab handshake; only TLS messages are drawn)")

	srvObs := &labTLSObserver{r: r, steps: true}
	cliObs := &labTLSObserver{r: r, client: true, draw: true, steps: true}
	req := "GET / HTTP/1.1\r\nHost: " + r.fam.host() + "\r\nConnection: close\r\n\r\n"
	resp := "HTTP/1.1 200 OK\r\nContent-Length: 24\r\nConnection: close\r\n\r\nhello from ustack, lab!\n"
	srvState, srvErr := serveOneHTTPS(env, cert, srvObs, resp)
	c, ctx, closeClient, err := env.client(&tlslite.Config{RootCAs: roots, ServerName: r.fam.server.Addr().String(), KeyExchange: tlslite.KeyExchangeRSA, Observer: cliObs.observe})
	if err != nil {
		return err
	}
	defer closeClient()
	if err := c.Handshake(ctx); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	if _, err := io.WriteString(c, req); err != nil {
		return err
	}
	body, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if err := <-srvErr; err != nil {
		return fmt.Errorf("server: %w", err)
	}
	c.Close()
	cliState := c.ConnectionState()
	hs := httpsRun{cert: cert, cli: cliObs, srv: srvObs, cliState: cliState, srvState: *srvState, req: req, resp: resp}
	// Wait until the client's FIN has been recorded: every record is in.
	r.rec.WaitPkts(2*time.Second, record.Any(func(p record.Pkt) bool { return p.ToServer && p.Has(header.FlagFIN) }))
	r.say("the client decrypted the response: %q", firstLine(body))

	r.proveHTTPS(hs)
	return nil
}

// httpsRun is what the https-rsa lab's conversation left for its proof.
type httpsRun struct {
	cert               tlslite.Certificate
	cli, srv           *labTLSObserver
	cliState, srvState tlslite.ConnectionState
	req, resp          string
}

// proveHTTPS checks the eight steps against the values both sides saw and
// the records captured on the link.
func (r *labRun) proveHTTPS(hs httpsRun) {
	cliObs, srvObs, cert, key := hs.cli, hs.srv, hs.cert, hs.cert.PrivateKey
	cliState, srvState, req, resp := hs.cliState, hs.srvState, hs.req, hs.resp
	ch, _ := labFind[tlslite.ClientHelloEvent](cliObs)
	sh, _ := labFind[tlslite.ServerHelloEvent](cliObs)
	crt, _ := labFind[tlslite.CertificateEvent](cliObs)
	cke, _ := labFind[tlslite.ClientKeyExchangeEvent](cliObs)
	ck, _ := labFind[tlslite.KeysEvent](cliObs)
	sk, _ := labFind[tlslite.KeysEvent](srvObs)
	r.check(len(crt.Certificates) > 0 && bytes.Equal(crt.Certificates[0].Raw, cert.Leaf.Raw) && cliState.HandshakeComplete,
		"[2] the client received the server's certificate and accepted it: signed by the CA it trusts, valid now, for %v", r.fam.server.Addr())
	r.check(len(ch.Random) == 32 && len(sh.Random) == 32 && !bytes.Equal(ch.Random, sh.Random),
		"[3][4] client random and server random: 32 bytes each, one from each side")
	pm := ck.PreMasterSecret
	dec, derr := rsa.DecryptPKCS1v15(nil, key, cke.EncryptedPreMaster)
	r.check(len(pm) == 48 && pm[0] == 3 && pm[1] == 3 && derr == nil && bytes.Equal(dec, pm) && bytes.Equal(sk.PreMasterSecret, pm),
		"[5] the encrypted pre-master secret decrypts with the server's private key to the client's 48 bytes, and the server has the same")
	masterOK := len(ck.MasterSecret) == 48 && bytes.Equal(ck.MasterSecret, sk.MasterSecret)
	if masterOK && !ck.ExtendedMasterSecret {
		want := tlslite.PRF(labSHA384(sh.CipherSuite), pm, "master secret", append(append([]byte(nil), ch.Random...), sh.Random...), 48)
		masterOK = bytes.Equal(want, ck.MasterSecret)
	}
	r.check(masterOK, "[6] both sides hold the same master secret, derived from the pre-master secret and the randoms")
	keysOK := false
	if ck.Keys != nil && sk.Keys != nil {
		kl, il := len(ck.Keys.ClientKey), len(ck.Keys.ClientIV)
		kb := tlslite.PRF(labSHA384(sh.CipherSuite), ck.MasterSecret, "key expansion", append(append([]byte(nil), sh.Random...), ch.Random...), 2*kl+2*il)
		keysOK = bytes.Equal(kb[:kl], ck.Keys.ClientKey) && bytes.Equal(kb[kl:2*kl], ck.Keys.ServerKey) &&
			bytes.Equal(kb[2*kl:2*kl+il], ck.Keys.ClientIV) && bytes.Equal(kb[2*kl+il:], ck.Keys.ServerIV) &&
			bytes.Equal(ck.Keys.ClientKey, sk.Keys.ClientKey) && bytes.Equal(ck.Keys.ServerKey, sk.Keys.ServerKey)
	}
	r.check(keysOK, "[6] PRF(master, \"key expansion\", server random + client random) reproduces both sides' session keys and IVs")
	r.check(cliState.HandshakeComplete && srvState.HandshakeComplete, "[7] each side checked the other's Finished: the handshake is complete on both")
	if ck.Keys != nil {
		up, upFin := labDecryptCaptured(r.stream(true), ck.Keys.ClientKey, ck.Keys.ClientIV)
		down, downFin := labDecryptCaptured(r.stream(false), ck.Keys.ServerKey, ck.Keys.ServerIV)
		r.say("records captured on the link, decrypted with the derived keys: %q and %q", firstLine(up), firstLine(down))
		r.check(upFin && downFin && string(up) == req && string(down) == resp,
			"[8] the AES-GCM records captured on the link decrypt with those keys to the HTTP request and the HTTP response")
	} else {
		r.check(false, "[8] the AES-GCM records captured on the link decrypt with those keys to the HTTP request and the HTTP response")
	}
}

// serveOneHTTPS answers one HTTPS request with resp on env's listener; the
// channel says how it went, after which the state is the server's.
func serveOneHTTPS(env *labTLSEnv, cert tlslite.Certificate, obs *labTLSObserver, resp string) (*tlslite.ConnectionState, <-chan error) {
	return serveHTTPS(env, &tlslite.Config{Certificates: []tlslite.Certificate{cert}, KeyExchange: tlslite.KeyExchangeRSA, Observer: obs.observe}, resp)
}

// serveHTTPS is serveOneHTTPS with the server's configuration.
func serveHTTPS(env *labTLSEnv, cfg *tlslite.Config, resp string) (*tlslite.ConnectionState, <-chan error) {
	srvErr := make(chan error, 1)
	srvState := new(tlslite.ConnectionState)
	go func() {
		c, err := env.ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		s := tlslite.Server(c, cfg)
		defer s.Close()
		var got []byte
		buf := make([]byte, 4096)
		for !bytes.Contains(got, []byte("\r\n\r\n")) {
			n, err := s.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				srvErr <- err
				return
			}
		}
		*srvState = s.ConnectionState()
		_, err = io.WriteString(s, resp)
		srvErr <- err
	}()
	return srvState, srvErr
}

func labSHA384(suite uint16) bool { return strings.HasSuffix(tlslite.CipherSuiteName(suite), "SHA384") }

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\r\n")
	return s
}

// stream reassembles the TCP payload one direction carried.
func (r *labRun) stream(toServer bool) []byte { return record.Stream(r.rec.Packets(), toServer) }

// short renders the first bytes of b in hex.
func short(b []byte) string { return ladder.Short(b) }

// labDecryptCaptured walks the TLS records of one direction: after
// ChangeCipherSpec each record is AES-GCM with sequence numbers from 0
// (Finished); it returns the application data and whether Finished
// decrypted too.
func labDecryptCaptured(s []byte, key, iv []byte) (app []byte, finished bool) {
	encrypted := false
	var seq uint64
	for len(s) >= 5 {
		n := int(s[3])<<8 | int(s[4])
		if len(s) < 5+n {
			break
		}
		rec := s[:5+n]
		s = s[5+n:]
		switch {
		case rec[0] == 20:
			encrypted = true
		case encrypted:
			pt, err := tlslite.OpenRecord(key, iv, seq, rec)
			seq++
			if err != nil {
				return app, finished
			}
			switch rec[0] {
			case 22:
				finished = finished || (len(pt) > 0 && pt[0] == 20)
			case 23:
				app = append(app, pt...)
			}
		}
	}
	return app, finished
}

// certCheck: three bad certificates refused, each with its reason; a good
// one accepted.
func (r *labRun) certCheck(env *labTLSEnv) error {
	ca, err := labCA("ustack lab CA")
	if err != nil {
		return err
	}
	rogue, err := labCA("someone else's CA")
	if err != nil {
		return err
	}
	ip := []net.IP{net.IP(r.fam.server.Addr().AsSlice())}
	good, err := ca.Issue(ip, nil, nil)
	if err != nil {
		return err
	}
	same := &tlslite.CertOptions{Key: good.PrivateKey} // one leaf key is enough
	now := time.Now()
	expired, err := ca.Issue(ip, nil, &tlslite.CertOptions{Key: good.PrivateKey, NotBefore: now.Add(-400 * 24 * time.Hour), NotAfter: now.Add(-35 * 24 * time.Hour)})
	if err != nil {
		return err
	}
	wrong, err := ca.Issue([]net.IP{net.IP(r.fam.other.AsSlice())}, []string{"www.example.com"}, same)
	if err != nil {
		return err
	}
	untrusted, err := rogue.Issue(ip, nil, same)
	if err != nil {
		return err
	}
	roots := r.tlsLadder(env, ca)
	r.say("the client trusts one CA, %q, and connects to %v", ca.Cert.Subject.CommonName, r.fam.server.Addr())
	cases := []struct {
		title  string
		cert   tlslite.Certificate
		reason error
	}{
		{"a valid certificate", good, nil},
		{"an expired certificate", expired, tlslite.ErrCertificateExpired},
		{"a certificate for another host", wrong, tlslite.ErrCertificateWrongHost},
		{"a certificate from a CA the client does not trust", untrusted, tlslite.ErrCertificateUnknownAuthority},
	}
	for _, tc := range cases {
		c := tc.cert.Leaf
		r.section("%s", r.T(tc.title))
		r.say("the server presents %s, valid %s to %s, issued by %q", labCertName(c), c.NotBefore.Format("2006-01-02"), c.NotAfter.Format("2006-01-02"), c.Issuer.CommonName)
		err := r.tryCert(env, tc.cert, roots)
		var ce *tlslite.CertificateError
		if tc.reason == nil {
			r.check(err == nil, "%s is accepted (%v)", r.T(tc.title), errText(err))
			continue
		}
		reason := "-"
		if errors.As(err, &ce) {
			reason = ce.Reason.Error()
		}
		r.say("the client refuses it: %s", reason)
		r.check(err != nil && errors.Is(err, tc.reason), "%s is refused: %s", r.T(tc.title), reason)
	}
	return nil
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// tryCert serves one connection with cert and returns the client's
// handshake error.
func (r *labRun) tryCert(env *labTLSEnv, cert tlslite.Certificate, roots *x509.CertPool) error {
	obs := &labTLSObserver{r: r, client: true, draw: true}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := env.ln.Accept()
		if err != nil {
			return
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		s := tlslite.Server(c, &tlslite.Config{Certificates: []tlslite.Certificate{cert}, KeyExchange: tlslite.KeyExchangeRSA})
		s.Handshake(context.Background())
		s.Close()
	}()
	defer func() { <-done }()
	c, ctx, closeClient, err := env.client(&tlslite.Config{RootCAs: roots, ServerName: r.fam.server.Addr().String(), Observer: obs.observe})
	if err != nil {
		return err
	}
	defer closeClient()
	err = c.Handshake(ctx)
	c.Close()
	return err
}
