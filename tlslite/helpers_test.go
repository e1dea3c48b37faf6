package tlslite

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Fixed test keys (testdata/*.key, RSA-2048) keep the run fast; the
// certificates are issued once per test binary.
type testPKIData struct {
	ca       *CA
	leaf     Certificate // localhost, 127.0.0.1, ::1, example.test
	roots    *x509.CertPool
	dir      string // ca.pem, cert.pem, key.pem
	goCert   tls.Certificate
	err      error
	leafKey  *rsa.PrivateKey
	caKey    *rsa.PrivateKey
	certPath string
	keyPath  string
	caPath   string
}

var (
	pkiOnce sync.Once
	testPKI testPKIData
)

func loadKey(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM in " + path)
	}
	return x509.ParsePKCS1PrivateKey(blk.Bytes)
}

func setupPKI() {
	p := &testPKI
	if p.leafKey, p.err = loadKey("testdata/leaf.key"); p.err != nil {
		return
	}
	if p.caKey, p.err = loadKey("testdata/ca.key"); p.err != nil {
		return
	}
	if p.ca, p.err = NewCA("tlslite test CA", &CertOptions{Key: p.caKey}); p.err != nil {
		return
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if p.leaf, p.err = p.ca.Issue(ips, []string{"localhost", "example.test"}, &CertOptions{Key: p.leafKey}); p.err != nil {
		return
	}
	p.roots = x509.NewCertPool()
	p.roots.AddCert(p.ca.Cert)
	if p.dir, p.err = os.MkdirTemp("", "tlslite-test-"); p.err != nil {
		return
	}
	certPEM, keyPEM := p.leaf.EncodePEM()
	p.caPath = filepath.Join(p.dir, "ca.pem")
	p.certPath = filepath.Join(p.dir, "cert.pem")
	p.keyPath = filepath.Join(p.dir, "key.pem")
	os.WriteFile(p.caPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.ca.Cert.Raw}), 0o644)
	os.WriteFile(p.certPath, certPEM, 0o644)
	os.WriteFile(p.keyPath, keyPEM, 0o600)
	p.goCert, p.err = tls.X509KeyPair(certPEM, keyPEM)
}

func pki(tb testing.TB) *testPKIData {
	tb.Helper()
	pkiOnce.Do(setupPKI)
	if testPKI.err != nil {
		tb.Fatal(testPKI.err)
	}
	return &testPKI
}

func TestMain(m *testing.M) {
	code := m.Run()
	if testPKI.dir != "" {
		os.RemoveAll(testPKI.dir)
	}
	os.Exit(code)
}

func serverConfig(tb testing.TB) *Config {
	return &Config{Certificates: []Certificate{pki(tb).leaf}}
}

func clientConfig(tb testing.TB) *Config {
	return &Config{RootCAs: pki(tb).roots, ServerName: "localhost"}
}

// tcpPair returns two ends of a loopback TCP connection.
func tcpPair(tb testing.TB) (client, server net.Conn) {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			ch <- nil
			return
		}
		ch <- c
	}()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	server = <-ch
	if server == nil {
		tb.Fatal("accept failed")
	}
	tb.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// handshakePair runs both handshakes concurrently and returns their errors.
func handshakePair(tb testing.TB, cli, srv interface{ Handshake(context.Context) error }) (cerr, serr error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Handshake(ctx) }()
	cerr = cli.Handshake(ctx)
	serr = <-done
	return
}

type goConn struct{ *tls.Conn }

func (g goConn) Handshake(ctx context.Context) error { return g.HandshakeContext(ctx) }

// echoOnce writes msg from a to b and reads it back on b.
func exchange(tb testing.TB, a, b net.Conn, msg []byte) {
	tb.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := a.Write(msg)
		errc <- err
	}()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(b, got); err != nil {
		tb.Fatalf("read: %v", err)
	}
	if err := <-errc; err != nil {
		tb.Fatalf("write: %v", err)
	}
	if string(got) != string(msg) {
		tb.Fatalf("data mismatch")
	}
}

// needBinary skips (or fails under CI) when an external tool is missing.
func needBinary(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("%s not installed (required under CI): %v", name, err)
		}
		tb.Skipf("%s not installed: %v", name, err)
	}
	return p
}
