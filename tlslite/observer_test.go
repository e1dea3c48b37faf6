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
			var ladder []string
			var keys *KeyMaterial
			var master, cliPre, srvPre, encPre []byte
			var clientRandom, serverRandom []byte
			for _, e := range sev {
				dir := "<-"
				if e.Sent {
					dir = "->"
				}
				switch e.Kind {
				case EventHandshake:
					ladder = append(ladder, dir+e.Message)
				case EventChangeCipherSpec, EventAlert, EventApplicationData:
					name := e.Kind.String()
					if e.Kind == EventAlert {
						name = e.Alert.String()
					}
					ladder = append(ladder, dir+name)
				case EventKeys:
					keys, master = e.Keys, e.MasterSecret
					clientRandom, serverRandom = e.ClientRandom, e.ServerRandom
				}
				if e.Message == "ClientKeyExchange" {
					srvPre, encPre = e.PreMasterSecret, e.EncryptedPreMaster
				}
			}
			for _, e := range cev {
				if e.Message == "ClientKeyExchange" {
					cliPre = e.PreMasterSecret
				}
			}
			want := "<-ClientHello ->ServerHello ->Certificate ->ServerKeyExchange ->ServerHelloDone <-ClientKeyExchange <-ChangeCipherSpec <-Finished ->NewSessionTicket ->ChangeCipherSpec ->Finished ->application_data <-close_notify"
			if suite == TLS_RSA_WITH_AES_128_GCM_SHA256 {
				want = strings.Replace(want, "->ServerKeyExchange ", "", 1)
				if len(encPre) != 256 {
					t.Errorf("encrypted pre-master secret: %d bytes", len(encPre))
				}
			}
			if got := strings.Join(ladder, " "); got != want {
				t.Errorf("ladder\n got %s\nwant %s", got, want)
			}
			if len(srvPre) == 0 || !bytes.Equal(srvPre, cliPre) {
				t.Error("pre-master secrets differ or missing")
			}
			if keylog.String() != fmt.Sprintf("CLIENT_RANDOM %x %x\n", clientRandom, master) {
				t.Errorf("key log %q", keylog.String())
			}
			// The key block is the exported PRF (RFC 5246 §6.3).
			kb := PRF(suite == TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, master, "key expansion", append(append([]byte(nil), serverRandom...), clientRandom...), 2*len(keys.ClientKey)+8)
			if !bytes.Equal(kb[:len(keys.ClientKey)], keys.ClientKey) {
				t.Error("PRF does not reproduce the client write key")
			}
			// Decrypt what the client received on the wire: after the
			// server's ChangeCipherSpec come Finished (seq 0) and the
			// application data (seq 1).
			recs := splitRecords(rec.got.Bytes())
			seq, found := uint64(0), false
			afterCCS := false
			for _, r := range recs {
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
				if recordType(r[0]) == recordTypeApplicationData && string(pt) == "the secret payload" {
					found = true
				}
				seq++
			}
			if !found {
				t.Fatal("application data not decrypted with the observed keys")
			}
		})
	}
}
