package tlslite

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestCertificateErrors(t *testing.T) {
	p := pki(t)
	past := &CertOptions{Key: p.leafKey, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}
	expired, err := p.ca.Issue([]net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"}, past)
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := NewCA("other CA", &CertOptions{Key: p.leafKey})
	if err != nil {
		t.Fatal(err)
	}
	untrusted, err := otherCA.Issue(nil, []string{"localhost"}, &CertOptions{Key: p.leafKey})
	if err != nil {
		t.Fatal(err)
	}
	self, err := SelfSigned(nil, []string{"localhost"}, &CertOptions{Key: p.leafKey})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		cert       Certificate
		serverName string
		reason     error
		alert      Alert
		x509err    any
	}{
		{"expired", expired, "localhost", ErrCertificateExpired, AlertCertificateExpired, new(x509.CertificateInvalidError)},
		{"wrong host", p.leaf, "wrong.example", ErrCertificateWrongHost, AlertBadCertificate, new(x509.HostnameError)},
		{"wrong IP", p.leaf, "10.9.8.7", ErrCertificateWrongHost, AlertBadCertificate, new(x509.HostnameError)},
		{"untrusted CA", untrusted, "localhost", ErrCertificateUnknownAuthority, AlertUnknownCA, new(x509.UnknownAuthorityError)},
		{"self-signed", self, "localhost", ErrCertificateSelfSigned, AlertUnknownCA, new(x509.UnknownAuthorityError)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scfg := &Config{Certificates: []Certificate{tc.cert}}
			ccfg := clientConfig(t)
			ccfg.ServerName = tc.serverName
			_, _, cerr, serr := pair(t, ccfg, scfg)
			if !errors.Is(cerr, tc.reason) {
				t.Fatalf("client error %v, want reason %v", cerr, tc.reason)
			}
			var ce *CertificateError
			if !errors.As(cerr, &ce) || ce.Certificate == nil {
				t.Fatalf("no CertificateError in %v", cerr)
			}
			if !errors.As(cerr, tc.x509err) {
				t.Fatalf("x509 error %T not reachable from %v", tc.x509err, cerr)
			}
			var ae *AlertError
			if !errors.As(cerr, &ae) || !ae.Sent || ae.Alert != tc.alert {
				t.Fatalf("client alert: %v", cerr)
			}
			if !errors.As(serr, &ae) || ae.Sent || ae.Alert != tc.alert {
				t.Fatalf("server saw %v, want received %v", serr, tc.alert)
			}
			if tc.reason == ErrCertificateSelfSigned && !errors.Is(cerr, ErrCertificateUnknownAuthority) {
				t.Fatal("self-signed is not also unknown authority")
			}
			if !strings.Contains(cerr.Error(), tc.reason.Error()) {
				t.Fatalf("message does not name the reason: %v", cerr)
			}
		})
	}
}

// tamperConn flips a bit in the last byte (the GCM tag) of writes once
// armed.
type tamperConn struct {
	net.Conn
	armed atomic.Bool
}

func (c *tamperConn) Write(b []byte) (int, error) {
	if c.armed.Load() && len(b) > 0 {
		b = append([]byte(nil), b...)
		b[len(b)-1] ^= 0x80
	}
	return c.Conn.Write(b)
}

func TestTamperedRecordBadRecordMAC(t *testing.T) {
	cr, sr := tcpPair(t)
	tc := &tamperConn{Conn: cr}
	cli, srv := Client(tc, clientConfig(t)), Server(sr, serverConfig(t))
	if cerr, serr := handshakePair(t, cli, srv); cerr != nil || serr != nil {
		t.Fatal(cerr, serr)
	}
	tc.armed.Store(true)
	if _, err := cli.Write([]byte("tampered")); err != nil {
		t.Fatal(err)
	}
	_, err := srv.Read(make([]byte, 100))
	var ae *AlertError
	if !errors.As(err, &ae) || !ae.Sent || ae.Alert != AlertBadRecordMAC {
		t.Fatalf("server: %v", err)
	}
	_, err = cli.Read(make([]byte, 100))
	if !errors.As(err, &ae) || ae.Sent || ae.Alert != AlertBadRecordMAC {
		t.Fatalf("client: %v", err)
	}
}

func TestWrongFinishedDecryptError(t *testing.T) {
	for _, side := range []string{"client", "server"} {
		t.Run(side, func(t *testing.T) {
			ccfg, scfg := clientConfig(t), serverConfig(t)
			bad := ccfg
			if side == "server" {
				bad = scfg
			}
			bad.testHooks = &testHooks{corruptFinished: true}
			_, srv, cerr, serr := pair(t, ccfg, scfg)
			srvOf := func(*testing.T, string) *Conn { return srv }
			sender, receiver := serr, cerr // the side checking the bad Finished sends the alert
			if side == "server" {
				sender, receiver = cerr, serr
			}
			var ae *AlertError
			if !errors.As(sender, &ae) || !ae.Sent || ae.Alert != AlertDecryptError {
				t.Fatalf("checker: %v", sender)
			}
			if receiver == nil {
				// The server finished first; the alert arrives on its next read.
				_, receiver = srvOf(t, side).Read(make([]byte, 1))
			}
			if !errors.As(receiver, &ae) || ae.Sent || ae.Alert != AlertDecryptError {
				t.Fatalf("other side: %v", receiver)
			}
		})
	}
}

// rawServer runs a tlslite server on one end and gives the test the raw
// other end; the server's handshake/read error arrives on the channel.
func rawServer(t *testing.T, cfg *Config) (net.Conn, *Conn, chan error) {
	cr, sr := tcpPair(t)
	srv := Server(sr, cfg)
	errc := make(chan error, 1)
	go func() {
		_, err := srv.Read(make([]byte, 1))
		errc <- err
	}()
	return cr, srv, errc
}

// readAlert reads records from a raw connection until an alert and
// returns its description.
func readAlert(t *testing.T, c net.Conn) Alert {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			t.Fatalf("no alert: %v", err)
		}
		body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
		if _, err := io.ReadFull(c, body); err != nil {
			t.Fatalf("short record: %v", err)
		}
		if recordType(hdr[0]) == recordTypeAlert && len(body) == 2 {
			return Alert(body[1])
		}
	}
}

func record(typ recordType, vers uint16, body []byte) []byte {
	return append([]byte{byte(typ), byte(vers >> 8), byte(vers), byte(len(body) >> 8), byte(len(body))}, body...)
}

// TestMalformedInputAlerts: truncated and oversized records and messages
// before the handshake get the alert RFC 5246 §6 and §7.2.2 call for.
func TestMalformedInputAlerts(t *testing.T) {
	hello := &clientHelloMsg{helloMsg: helloMsg{vers: VersionTLS12, random: make([]byte, 32)},
		cipherSuites: []uint16{TLS_RSA_WITH_AES_128_GCM_SHA256}, compressionMethods: []uint8{0}}
	helloBytes, _ := hello.marshal()
	for _, tc := range []struct {
		name  string
		input []byte
		want  Alert
	}{
		{"record over 2^14", append([]byte{22, 3, 1, 0x40, 0x01}, make([]byte, 1<<14+1)...), AlertRecordOverflow},
		{"record over 2^14+2048 header only", []byte{22, 3, 1, 0x48, 0x01}, AlertRecordOverflow},
		{"truncated record", append([]byte{22, 3, 1, 0, 100}, make([]byte, 50)...), AlertDecodeError},
		{"truncated header", []byte{22, 3}, AlertDecodeError},
		{"truncated ClientHello body", record(recordTypeHandshake, versionTLS10, []byte{1, 0, 0, 6, 3, 3, 0, 0, 0, 0}), AlertDecodeError},
		{"ClientHello length beyond body", record(recordTypeHandshake, versionTLS10, append([]byte{1, 0, 0, byte(len(helloBytes) - 4 + 10)}, helloBytes[4:]...)), AlertDecodeError},
		{"oversized handshake message", record(recordTypeHandshake, versionTLS10, []byte{1, 0xff, 0xff, 0xff}), AlertIllegalParameter},
		{"trailing bytes in ClientHello", record(recordTypeHandshake, versionTLS10, append(append([]byte{1, 0, 0, byte(len(helloBytes) - 4 + 1)}, helloBytes[4:]...), 0)), AlertDecodeError},
		{"unknown content type", record(99, versionTLS10, []byte{1}), AlertUnexpectedMessage},
		{"application data first", record(recordTypeApplicationData, versionTLS10, []byte{1}), AlertUnexpectedMessage},
		{"empty handshake record", record(recordTypeHandshake, versionTLS10, nil), AlertUnexpectedMessage},
		{"ChangeCipherSpec first", record(recordTypeChangeCipherSpec, versionTLS10, []byte{1}), AlertUnexpectedMessage},
		{"wrong first message", record(recordTypeHandshake, versionTLS10, []byte{typeFinished, 0, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}), AlertUnexpectedMessage},
		{"SSL 3.0 client", record(recordTypeHandshake, versionTLS10, append(append([]byte(nil), helloBytes[:4]...), append([]byte{3, 0}, helloBytes[6:]...)...)), AlertProtocolVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, _, errc := rawServer(t, serverConfig(t))
			raw.Write(tc.input)
			if strings.HasPrefix(tc.name, "truncated") || strings.Contains(tc.name, "beyond") {
				raw.(*net.TCPConn).CloseWrite()
			}
			if got := readAlert(t, raw); got != tc.want {
				t.Fatalf("alert %v, want %v", got, tc.want)
			}
			var ae *AlertError
			if err := <-errc; !errors.As(err, &ae) || ae.Alert != tc.want {
				t.Fatalf("server error %v", err)
			}
		})
	}
}

// TestEncryptedRecordLimits: after the handshake, a record longer than
// 2^14+2048 and a record that decrypts to more than 2^14 bytes both get
// record_overflow (RFC 5246 §6.2.3, §6.2.1).
func TestEncryptedRecordLimits(t *testing.T) {
	for _, tc := range []string{"ciphertext", "plaintext"} {
		t.Run(tc, func(t *testing.T) {
			var keys *KeyMaterial
			ccfg := clientConfig(t)
			ccfg.Observer = func(e Event) {
				if k, ok := e.(KeysEvent); ok {
					keys = k.Keys
				}
			}
			cr, sr := tcpPair(t)
			cli, srv := Client(cr, ccfg), Server(sr, serverConfig(t))
			if cerr, serr := handshakePair(t, cli, srv); cerr != nil || serr != nil {
				t.Fatal(cerr, serr)
			}
			errc := make(chan error, 1)
			go func() { _, err := srv.Read(make([]byte, 1)); errc <- err }()
			if tc == "ciphertext" {
				cr.Write(append([]byte{23, 3, 3, 0x48, 0x01}, make([]byte, 1<<14+2049)...))
			} else {
				rec, err := SealRecord(keys.ClientKey, keys.ClientIV, cli.out.seq, 23, make([]byte, 1<<14+1))
				if err != nil {
					t.Fatal(err)
				}
				cr.Write(rec)
			}
			var ae *AlertError
			if err := <-errc; !errors.As(err, &ae) || !ae.Sent || ae.Alert != AlertRecordOverflow {
				t.Fatalf("server: %v", err)
			}
			if _, err := cli.Read(make([]byte, 1)); !errors.As(err, &ae) || ae.Alert != AlertRecordOverflow {
				t.Fatalf("client: %v", err)
			}
		})
	}
}

// TestBleichenbacherUniformAlert: RFC 5246 §7.4.7.1. Whatever is wrong
// with the RSA-encrypted pre-master secret (PKCS#1 padding, length,
// version inside, or nothing but being a different secret), the server
// carries on with a random secret and the only outcome is the same: the
// client's encrypted Finished does not authenticate under the server's
// keys, so every case ends in bad_record_mac, with the same error text.
// (With AES-GCM the Finished record fails authentication before
// verify_data could be compared; that is the uniform alert here.)
func TestBleichenbacherUniformAlert(t *testing.T) {
	pub := &pki(t).leafKey.PublicKey
	rawRSA := func(m *big.Int) []byte {
		c := new(big.Int).Exp(m, big.NewInt(int64(pub.E)), pub.N)
		return c.FillBytes(make([]byte, pub.Size()))
	}
	encrypt := func(pt []byte) []byte {
		ct, err := rsa.EncryptPKCS1v15(rand.Reader, pub, pt)
		if err != nil {
			t.Fatal(err)
		}
		return ct
	}
	cases := map[string]func(pre []byte) []byte{
		"well-formed, other secret": func(pre []byte) []byte {
			other := append([]byte{3, 3}, make([]byte, 46)...)
			rand.Read(other[2:])
			return encrypt(other)
		},
		"bad padding": func(pre []byte) []byte {
			m, _ := rand.Int(rand.Reader, pub.N)
			return rawRSA(m)
		},
		"padding type 1": func(pre []byte) []byte {
			em := make([]byte, pub.Size())
			em[1] = 1
			for i := 2; i < len(em)-49; i++ {
				em[i] = 0xff
			}
			copy(em[len(em)-48:], pre)
			return rawRSA(new(big.Int).SetBytes(em))
		},
		"47-byte secret": func(pre []byte) []byte { return encrypt(pre[:47]) },
		"wrong version":  func(pre []byte) []byte { return encrypt(append([]byte{3, 1}, pre[2:]...)) },
		// Drop the last byte: dropping the first would leave the same
		// integer whenever it was zero (1 time in 256), a valid ciphertext.
		"short ciphertext":   func(pre []byte) []byte { ct := encrypt(pre); return ct[:len(ct)-1] },
		"zero ciphertext":    func(pre []byte) []byte { return make([]byte, pub.Size()) },
		"ciphertext above n": func(pre []byte) []byte { return pub.N.FillBytes(make([]byte, pub.Size())) },
	}
	var msgs []string
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			ccfg := clientConfig(t)
			ccfg.KeyExchange = KeyExchangeRSA
			ccfg.testHooks = &testHooks{rsaCiphertext: func(_ *rsa.PublicKey, pre []byte) []byte { return mk(pre) }}
			_, _, cerr, serr := pair(t, ccfg, serverConfig(t))
			var ae *AlertError
			if !errors.As(serr, &ae) || !ae.Sent || ae.Alert != AlertBadRecordMAC {
				t.Fatalf("server: %v", serr)
			}
			if !errors.As(cerr, &ae) || ae.Sent || ae.Alert != AlertBadRecordMAC {
				t.Fatalf("client: %v", cerr)
			}
			msgs = append(msgs, serr.Error())
		})
	}
	for _, m := range msgs {
		if m != msgs[0] {
			t.Fatalf("server errors differ: %q vs %q", m, msgs[0])
		}
	}
}

// TestRSAPreMasterSecretDirect checks the routine itself: a correct
// ciphertext yields M; every failure yields a 48-byte value that is not M.
func TestRSAPreMasterSecretDirect(t *testing.T) {
	priv := pki(t).leafKey
	pre := append([]byte{3, 3}, make([]byte, 46)...)
	rand.Read(pre[2:])
	ct, _ := rsa.EncryptPKCS1v15(rand.Reader, &priv.PublicKey, pre)
	got, err := rsaPreMasterSecret(rand.Reader, priv, ct, VersionTLS12)
	if err != nil || string(got) != string(pre) {
		t.Fatal("correct ciphertext not decrypted")
	}
	got, _ = rsaPreMasterSecret(rand.Reader, priv, ct, 0x0302)
	if len(got) != 48 || string(got) == string(pre) {
		t.Fatal("version mismatch not replaced by random")
	}
	ct[10] ^= 1
	got, _ = rsaPreMasterSecret(rand.Reader, priv, ct, VersionTLS12)
	if len(got) != 48 || string(got) == string(pre) {
		t.Fatal("corrupt ciphertext not replaced by random")
	}
}
