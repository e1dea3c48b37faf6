package lab

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ustack/internal/ladder"
	"ustack/internal/record"
	"ustack/stack/link"
)

// labNullLink is an Endpoint that swallows what is written: link.Tap on it
// turns written packets into pcapng.
type labNullLink struct{}

func (labNullLink) ReadBatch([][]byte, []int, int) (int, error) { return 0, nil }
func (labNullLink) WriteBatch(b [][]byte, _ int) (int, error)   { return len(b), nil }
func (labNullLink) BatchSize() int                              { return 1 }
func (labNullLink) MTU() int                                    { return 1500 }
func (labNullLink) Close() error                                { return nil }

// writeLabPcapng writes the recorded segments as pcapng, with the
// project's writer (link.Tap), each packet rebuilt from the recorder
// (addresses, ports, numbers, flags and payload as they were; TCP options
// other than the SYN's MSS are not kept).
func writeLabPcapng(t *testing.T, path string, pk []record.Pkt) {
	t.Helper()
	var buf bytes.Buffer
	var at time.Time
	tap, err := link.Tap(labNullLink{}, &buf, link.TapClock(func() time.Time { return at }))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pk {
		if p.Dropped {
			continue
		}
		at = p.T
		pkt := record.Build(netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort), p.Seq, p.Ack, p.Flags, p.Payload)
		tap.WriteBatch([][]byte{pkt}, link.Headroom)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestLabForwardSecrecyTshark: tshark, given only the server's private
// key, decrypts the recorded RSA session (it finds the HTTP request) and
// not the ECDHE one.
func TestLabForwardSecrecyTshark(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("tshark not installed (required under CI): %v", err)
		}
		t.Skipf("tshark not installed: %v", err)
	}
	var out bytes.Buffer
	r := newLabRun(&out, ladder.NewText(&out, false), Options{Lang: "en"}, "forward-secrecy")
	env, done, err := r.tlsEnvMem()
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	run, err := r.fsRecord(env)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	dir := t.TempDir()
	_, keyPEM := run.cert.EncodePEM()
	keyFile := filepath.Join(dir, "server.key")
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pk := r.rec.Packets()
	for _, s := range run.sessions {
		pcap := filepath.Join(dir, s.kex+".pcapng")
		writeLabPcapng(t, pcap, labConnPkts(pk, s.port))
		// With the key, as Wireshark's RSA keys list would have it.
		withKey := func(filter string, fields ...string) string {
			args := []string{"-r", pcap, "-d", "tcp.port==80,tls", "-o", `uat:rsa_keys:"` + keyFile + `",""`, "-Y", filter, "-T", "fields"}
			for _, f := range fields {
				args = append(args, "-e", f)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, tshark, args...)
			cmd.Stderr = &stderr
			got, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s: tshark %s: %v\n%s%s", s.kex, filter, err, got, stderr.String())
			}
			return strings.TrimSpace(string(got))
		}
		// tshark reads the capture as TLS: the application-data records are there.
		if recs := withKey("tls.record.content_type == 23", "frame.number"); len(strings.Fields(recs)) < 2 {
			t.Fatalf("%s session: tshark sees %q as application-data records", s.kex, recs)
		}
		got := withKey("http.request", "http.request.method", "http.request.uri", "http.cookie")
		t.Logf("%s session: tshark -Y http.request: %q", s.kex, got)
		decrypted := got == "GET\t/account\tsession="+s.kex+"-secret"
		if want := s.kex == "RSA"; decrypted != want || (!want && got != "") {
			t.Errorf("%s session: tshark decrypted the request: %v, want %v (%q)", s.kex, decrypted, want, got)
		}
	}
}
