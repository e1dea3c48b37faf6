package tlslite

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
)

// recordingConn keeps a copy of every byte read.
type recordingConn struct {
	net.Conn
	mu  sync.Mutex
	got bytes.Buffer
}

func (c *recordingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.got.Write(b[:n])
	c.mu.Unlock()
	return n, err
}

func splitRecords(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= 5 {
		n := 5 + (int(b[3])<<8 | int(b[4]))
		if len(b) < n {
			break
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// TestObserverLadderAndLabDecrypt: the Observer reports every message with
// its key values, and the derived keys decrypt records captured on the
// wire with OpenRecord (what the lab does).
func TestObserverLadderAndLabDecrypt(t *testing.T) {
	for _, suite := range []uint16{TLS_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384} {
		t.Run(CipherSuiteName(suite), func(t *testing.T) {
			var mu sync.Mutex
			var sev, cev []Event
			scfg := serverConfig(t)
			scfg.CipherSuites = []uint16{suite}
			scfg.Observer = func(e Event) { mu.Lock(); sev = append(sev, e); mu.Unlock() }
			ccfg := clientConfig(t)
			ccfg.Observer = func(e Event) { mu.Lock(); cev = append(cev, e); mu.Unlock() }
			var keylog bytes.Buffer
			ccfg.KeyLogWriter = &keylog
			cr, sr := tcpPair(t)
			rec := &recordingConn{Conn: cr}
			cli, srv := Client(rec, ccfg), Server(sr, scfg)
			if cerr, serr := handshakePair(t, cli, srv); cerr != nil || serr != nil {
				t.Fatal(cerr, serr)
			}
			exchange(t, srv, cli, []byte("the secret payload"))
			cli.Close()
			srv.Read(make([]byte, 1)) // close_notify

			mu.Lock()
			defer mu.Unlock()
			want := "<-ClientHello ->ServerHello ->Certificate ->ServerKeyExchange ->ServerHelloDone <-ClientKeyExchange <-ChangeCipherSpec <-Finished ->NewSessionTicket ->ChangeCipherSpec ->Finished ->application_data <-close_notify"
			if suite == TLS_RSA_WITH_AES_128_GCM_SHA256 {
				want = strings.Replace(want, "->ServerKeyExchange ", "", 1)
			}
			if got := ladderOf(sev); got != want {
				t.Errorf("ladder\n got %s\nwant %s", got, want)
			}
			for _, e := range sev {
				if e.Client() {
					t.Fatalf("server's %T says client", e)
				}
			}
			for _, e := range cev {
				if !e.Client() {
					t.Fatalf("client's %T says server", e)
				}
			}
			cke, _ := findEvent[ClientKeyExchangeEvent](sev)
			if rsa := suite == TLS_RSA_WITH_AES_128_GCM_SHA256; rsa && len(cke.EncryptedPreMaster) != 256 ||
				!rsa && (cke.Curve != X25519 || len(cke.PublicKey) != 32) {
				t.Errorf("ClientKeyExchange %+v", cke)
			}
			sk, _ := findEvent[KeysEvent](sev)
			ck, _ := findEvent[KeysEvent](cev)
			if len(sk.PreMasterSecret) == 0 || !bytes.Equal(sk.PreMasterSecret, ck.PreMasterSecret) {
				t.Error("pre-master secrets differ or missing")
			}
			if keylog.String() != fmt.Sprintf("CLIENT_RANDOM %x %x\n", sk.ClientRandom, sk.MasterSecret) {
				t.Errorf("key log %q", keylog.String())
			}
			// The key block is the exported PRF (RFC 5246 §6.3).
			keys := sk.Keys
			kb := PRF(suite == TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, sk.MasterSecret, "key expansion", append(append([]byte(nil), sk.ServerRandom...), sk.ClientRandom...), 2*len(keys.ClientKey)+8)
			if !bytes.Equal(kb[:len(keys.ClientKey)], keys.ClientKey) {
				t.Error("PRF does not reproduce the client write key")
			}
			if !decryptsPayload(t, rec.got.Bytes(), keys, "the secret payload") {
				t.Fatal("application data not decrypted with the observed keys")
			}
		})
	}
}

// ladderOf draws events as "<-ClientHello ->ServerHello ...", from the
// observer's side: -> sent, <- received.
func ladderOf(events []Event) string {
	var ladder []string
	for _, e := range events {
		dir := "<-"
		if e.Sent() {
			dir = "->"
		}
		switch e := e.(type) {
		case HandshakeEvent:
			ladder = append(ladder, dir+e.Message())
		case ChangeCipherSpecEvent:
			ladder = append(ladder, dir+"ChangeCipherSpec")
		case AlertEvent:
			ladder = append(ladder, dir+e.Alert.String())
		case ApplicationDataEvent:
			ladder = append(ladder, dir+"application_data")
		}
	}
	return strings.Join(ladder, " ")
}

func findEvent[T Event](events []Event) (T, bool) {
	for _, e := range events {
		if t, ok := e.(T); ok {
			return t, true
		}
	}
	var zero T
	return zero, false
}

// decryptsPayload decrypts what the client received on the wire with the
// server's write key: after the server's ChangeCipherSpec come Finished
// (seq 0) and the application data (seq 1). It reports whether payload
// was among the application data.
func decryptsPayload(t *testing.T, wire []byte, keys *KeyMaterial, payload string) bool {
	t.Helper()
	seq, found, afterCCS := uint64(0), false, false
	for _, r := range splitRecords(wire) {
		if recordType(r[0]) == recordTypeChangeCipherSpec {
			afterCCS = true
			continue
		}
		if !afterCCS {
			continue
		}
		pt, err := OpenRecord(keys.ServerKey, keys.ServerIV, seq, r)
		if err != nil {
			t.Fatalf("record seq %d: %v", seq, err)
		}
		if recordType(r[0]) == recordTypeApplicationData && string(pt) == payload {
			found = true
		}
		seq++
	}
	return found
}
