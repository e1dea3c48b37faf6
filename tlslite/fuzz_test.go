package tlslite

import (
	"bytes"
	"crypto/tls"
	"net"
	"reflect"
	"sync"
	"testing"
	"time"
)

// Seeds: the plaintext records and handshake messages of real handshakes
// (tlslite both ways, RSA and ECDHE, and a crypto/tls ClientHello).
var (
	seedOnce sync.Once
	seeds    struct {
		clientStream, serverStream [][]byte
		messages                   map[uint8][][]byte
	}
)

func captureSeeds(t testing.TB) {
	seedOnce.Do(func() {
		seeds.messages = map[uint8][][]byte{}
		for _, suite := range []uint16{TLS_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256} {
			a, b := net.Pipe()
			ra, rb := &recordingConn{Conn: a}, &recordingConn{Conn: b}
			scfg := serverConfig(t)
			scfg.CipherSuites = []uint16{suite}
			ccfg := clientConfig(t)
			ccfg.NextProtos = []string{"http/1.1"}
			scfg.NextProtos = []string{"http/1.1"}
			cli, srv := Client(ra, ccfg), Server(rb, scfg)
			handshakePair(t, cli, srv)
			a.Close()
			b.Close()
			seeds.clientStream = append(seeds.clientStream, rb.got.Bytes()) // what the server read
			seeds.serverStream = append(seeds.serverStream, ra.got.Bytes())
			for _, stream := range [][]byte{ra.got.Bytes(), rb.got.Bytes()} {
				for _, r := range splitRecords(stream) {
					if recordType(r[0]) != recordTypeHandshake {
						if recordType(r[0]) == recordTypeChangeCipherSpec {
							break
						}
						continue
					}
					body := r[5:]
					for len(body) >= 4 {
						n := 4 + (int(body[1])<<16 | int(body[2])<<8 | int(body[3]))
						if n > len(body) {
							break
						}
						seeds.messages[body[0]] = append(seeds.messages[body[0]], body[:n])
						body = body[n:]
					}
				}
			}
		}
		// A TLS 1.3-capable crypto/tls ClientHello.
		a, b := net.Pipe()
		go tls.Client(a, &tls.Config{ServerName: "example.test"}).Handshake()
		b.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4096)
		n, _ := b.Read(buf)
		a.Close()
		b.Close()
		if n > 5 {
			seeds.clientStream = append(seeds.clientStream, buf[:n])
			seeds.messages[typeClientHello] = append(seeds.messages[typeClientHello], buf[5:n])
		}
		fin, _ := (&finishedMsg{verifyData: make([]byte, 12)}).marshal()
		seeds.messages[typeFinished] = append(seeds.messages[typeFinished], fin)
	})
}

func addSeeds(f *testing.F, typ uint8) {
	captureSeeds(f)
	if len(seeds.messages[typ]) == 0 {
		f.Fatalf("no seed for %s", msgName(typ))
	}
	for _, m := range seeds.messages[typ] {
		f.Add(m)
	}
	f.Add([]byte{typ, 0, 0, 0})
}

// fuzzRoundTrip checks that a message that parses re-marshals to
// something that parses to the same value.
func fuzzRoundTrip(t *testing.T, data []byte, m1, m2 handshakeMessage) {
	if !m1.unmarshal(data) {
		return
	}
	out, err := m1.marshal()
	if err != nil {
		return // e.g. a field too long for its length prefix after parsing
	}
	if !m2.unmarshal(out) {
		t.Fatalf("re-marshalled %T does not parse", m1)
	}
	// marshal is canonical: the re-parsed message marshals identically.
	out2, err := m2.marshal()
	if err != nil || !bytes.Equal(out, out2) {
		t.Fatalf("round trip changed %T:\n%x\n%x", m1, out, out2)
	}
}

func FuzzUnmarshalClientHello(f *testing.F) {
	addSeeds(f, typeClientHello)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(clientHelloMsg), new(clientHelloMsg)) })
}

func FuzzUnmarshalServerHello(f *testing.F) {
	addSeeds(f, typeServerHello)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(serverHelloMsg), new(serverHelloMsg)) })
}

func FuzzUnmarshalCertificate(f *testing.F) {
	addSeeds(f, typeCertificate)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(certificateMsg), new(certificateMsg)) })
}

func FuzzUnmarshalServerKeyExchange(f *testing.F) {
	addSeeds(f, typeServerKeyExchange)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip(t, data, new(serverKeyExchangeMsg), new(serverKeyExchangeMsg))
	})
}

func FuzzUnmarshalServerHelloDone(f *testing.F) {
	addSeeds(f, typeServerHelloDone)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip(t, data, new(serverHelloDoneMsg), new(serverHelloDoneMsg))
	})
}

func FuzzUnmarshalClientKeyExchange(f *testing.F) {
	addSeeds(f, typeClientKeyExchange)
	f.Fuzz(func(t *testing.T, data []byte) {
		var m clientKeyExchangeMsg
		if m.unmarshal(data) {
			m.rsaCiphertext()
			m.ecdhPublic()
		}
		fuzzRoundTrip(t, data, new(clientKeyExchangeMsg), new(clientKeyExchangeMsg))
	})
}

func FuzzUnmarshalFinished(f *testing.F) {
	addSeeds(f, typeFinished)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip(t, data, new(finishedMsg), new(finishedMsg)) })
}

func FuzzUnmarshalNewSessionTicket(f *testing.F) {
	addSeeds(f, typeNewSessionTicket)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip(t, data, new(newSessionTicketMsg), new(newSessionTicketMsg))
	})
}

func FuzzSessionState(f *testing.F) {
	f.Add((&sessionState{vers: VersionTLS12, cipherSuite: TLS_RSA_WITH_AES_128_GCM_SHA256, ems: true, createdAt: 1, masterSecret: make([]byte, 48)}).marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		var s sessionState
		if s.unmarshal(data) {
			var s2 sessionState
			if !s2.unmarshal(s.marshal()) || !reflect.DeepEqual(s, s2) {
				t.Fatal("session state round trip")
			}
		}
	})
}

// fuzzConn feeds a fixed byte stream and swallows writes.
type fuzzConn struct{ r *bytes.Reader }

func (c fuzzConn) Read(b []byte) (int, error)         { return c.r.Read(b) }
func (c fuzzConn) Write(b []byte) (int, error)        { return len(b), nil }
func (c fuzzConn) Close() error                       { return nil }
func (c fuzzConn) LocalAddr() net.Addr                { return nil }
func (c fuzzConn) RemoteAddr() net.Addr               { return nil }
func (c fuzzConn) SetDeadline(t time.Time) error      { return nil }
func (c fuzzConn) SetReadDeadline(t time.Time) error  { return nil }
func (c fuzzConn) SetWriteDeadline(t time.Time) error { return nil }

// FuzzReadRecordServer feeds arbitrary bytes to a server: the record layer
// and every server-side parser must fail cleanly.
func FuzzReadRecordServer(f *testing.F) {
	captureSeeds(f)
	for _, s := range seeds.clientStream {
		f.Add(s)
	}
	f.Add([]byte{22, 3, 1, 0x40, 0x01})
	cfg := serverConfig(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		c := Server(fuzzConn{bytes.NewReader(data)}, cfg)
		c.Read(make([]byte, 64))
	})
}

// FuzzReadRecordClient does the same for the client side.
func FuzzReadRecordClient(f *testing.F) {
	captureSeeds(f)
	for _, s := range seeds.serverStream {
		f.Add(s)
	}
	cfg := clientConfig(f)
	cfg.InsecureSkipVerify = true
	f.Fuzz(func(t *testing.T, data []byte) {
		c := Client(fuzzConn{bytes.NewReader(data)}, cfg)
		c.Read(make([]byte, 64))
	})
}

// TestMarshalUnmarshal: unmarshal(marshal(m)) == m for filled-in messages.
func TestMarshalUnmarshal(t *testing.T) {
	msgs := []handshakeMessage{
		&clientHelloMsg{helloMsg: helloMsg{vers: VersionTLS12, random: make([]byte, 32), sessionID: []byte{1, 2, 3},
			ecPointFormats: []uint8{0}, extendedMasterSecret: true, secureRenegotiationSupported: true,
			secureRenegotiation: []byte{}, ticketSupported: true},
			cipherSuites: []uint16{0xc02f, 0x009c}, compressionMethods: []uint8{0}, serverName: "example.test",
			supportedGroups: []CurveID{X25519, CurveP256}, signatureSchemes: supportedSignatureSchemes,
			alpnProtocols: []string{"h2", "http/1.1"}, sessionTicket: []byte("ticket"), supportedVersions: []uint16{0x0304, 0x0303}},
		&serverHelloMsg{helloMsg: helloMsg{vers: VersionTLS12, random: make([]byte, 32), sessionID: []byte{9},
			ecPointFormats: []uint8{0}, extendedMasterSecret: true,
			secureRenegotiationSupported: true, secureRenegotiation: []byte{}, ticketSupported: true},
			cipherSuite: 0xc030, serverNameAck: true, alpnProtocol: "http/1.1"},
		&certificateMsg{certificates: [][]byte{{1, 2}, {3}}},
		&serverKeyExchangeMsg{curve: X25519, publicKey: make([]byte, 32), sigScheme: PSSWithSHA256, signature: []byte{5, 6}},
		&clientKeyExchangeMsg{body: []byte{0, 2, 7, 8}},
		&finishedMsg{verifyData: make([]byte, 12)},
		&newSessionTicketMsg{lifetimeHint: 7200, ticket: []byte("t")},
	}
	for _, m := range msgs {
		b, err := m.marshal()
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		m2 := reflect.New(reflect.TypeOf(m).Elem()).Interface().(handshakeMessage)
		if !m2.unmarshal(b) {
			t.Fatalf("%T does not parse", m)
		}
		switch v := m2.(type) {
		case *clientHelloMsg:
			v.extensions = nil
		case *serverHelloMsg:
			v.extensions = nil
		}
		if !reflect.DeepEqual(m, m2) {
			t.Errorf("%T round trip:\n%+v\n%+v", m, m, m2)
		}
	}
}
