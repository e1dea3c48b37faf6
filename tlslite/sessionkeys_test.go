package tlslite

import (
	"bytes"
	"net"
	"sync"
	"testing"
)

// wireConn keeps a copy of every byte written and read.
type wireConn struct {
	net.Conn
	mu          sync.Mutex
	sent, recvd bytes.Buffer
}

func (c *wireConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.recvd.Write(b[:n])
	c.mu.Unlock()
	return n, err
}

func (c *wireConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.sent.Write(b)
	c.mu.Unlock()
	return c.Conn.Write(b)
}

// plainHandshake returns the handshake messages one direction sent before
// its ChangeCipherSpec, one slice each (header included).
func plainHandshake(wire []byte) [][]byte {
	var stream []byte
	for _, r := range splitRecords(wire) {
		if recordType(r[0]) == recordTypeChangeCipherSpec {
			break
		}
		if recordType(r[0]) == recordTypeHandshake {
			stream = append(stream, r[5:]...)
		}
	}
	var msgs [][]byte
	for len(stream) >= 4 {
		n := 4 + (int(stream[1])<<16 | int(stream[2])<<8 | int(stream[3]))
		msgs = append(msgs, stream[:n])
		stream = stream[n:]
	}
	return msgs
}

// TestSessionKeysFromWire: SessionKeys, given the pre-master secret, the
// randoms and (for RFC 7627) the handshake messages seen on the wire,
// reproduces the master secret and the keys both ends derived.
func TestSessionKeysFromWire(t *testing.T) {
	cases := []struct {
		name  string
		suite uint16
		ems   bool
	}{
		{"rsa-ems", TLS_RSA_WITH_AES_128_GCM_SHA256, true},
		{"ecdhe-ems-sha384", TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, true},
		{"rsa-no-ems", TLS_RSA_WITH_AES_256_GCM_SHA384, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var cev []Event
			scfg := serverConfig(t)
			scfg.CipherSuites = []uint16{tc.suite}
			ccfg := clientConfig(t)
			ccfg.Observer = func(e Event) { mu.Lock(); cev = append(cev, e); mu.Unlock() }
			if !tc.ems {
				scfg.testHooks = &testHooks{noEMS: true}
				ccfg.AllowNoExtendedMasterSecret = true
			}
			cr, sr := tcpPair(t)
			w := &wireConn{Conn: cr}
			cli, srv := Client(w, ccfg), Server(sr, scfg)
			if cerr, serr := handshakePair(t, cli, srv); cerr != nil || serr != nil {
				t.Fatal(cerr, serr)
			}
			mu.Lock()
			k, _ := findEvent[KeysEvent](cev)
			mu.Unlock()
			if k.ExtendedMasterSecret != tc.ems {
				t.Fatalf("EMS %v, want %v", k.ExtendedMasterSecret, tc.ems)
			}
			w.mu.Lock()
			up, down := plainHandshake(w.sent.Bytes()), plainHandshake(w.recvd.Bytes())
			w.mu.Unlock()
			if len(up) != 2 || len(down) < 3 {
				t.Fatalf("%d client and %d server messages before ChangeCipherSpec", len(up), len(down))
			}
			var hs []byte
			if tc.ems {
				// ClientHello, the server's first flight (through
				// ServerHelloDone; NewSessionTicket comes later), then
				// ClientKeyExchange.
				hs = append([]byte(nil), up[0]...)
				for _, m := range down {
					hs = append(hs, m...)
					if m[0] == typeServerHelloDone {
						break
					}
				}
				hs = append(hs, up[1]...)
			}
			master, keys, err := SessionKeys(tc.suite, k.PreMasterSecret, k.ClientRandom, k.ServerRandom, hs)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(master, k.MasterSecret) || !bytes.Equal(keys.ClientKey, k.Keys.ClientKey) || !bytes.Equal(keys.ServerKey, k.Keys.ServerKey) ||
				!bytes.Equal(keys.ClientIV, k.Keys.ClientIV) || !bytes.Equal(keys.ServerIV, k.Keys.ServerIV) {
				t.Fatalf("derived %x %+v, the handshake had %x %+v", master, keys, k.MasterSecret, k.Keys)
			}
			// One byte of the transcript changed: another master secret.
			if tc.ems {
				hs[len(hs)-1] ^= 1
				m2, _, _ := SessionKeys(tc.suite, k.PreMasterSecret, k.ClientRandom, k.ServerRandom, hs)
				if bytes.Equal(m2, master) {
					t.Fatal("the session hash does not depend on the transcript")
				}
			}
		})
	}
	if _, _, err := SessionKeys(0x1301, make([]byte, 48), make([]byte, 32), make([]byte, 32), nil); err == nil {
		t.Error("an unknown suite was accepted")
	}
	if _, _, err := SessionKeys(TLS_RSA_WITH_AES_128_GCM_SHA256, make([]byte, 48), make([]byte, 31), make([]byte, 32), nil); err == nil {
		t.Error("a short random was accepted")
	}
}
