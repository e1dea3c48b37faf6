package tlslite

// Certificates: loading a PEM chain and key, creating a CA and an RSA-2048
// leaf (for --tls-dir), and the client's verification of the server chain
// (RFC 5246 §7.4.2, RFC 5280 path validation through crypto/x509, RFC 6125
// host names) with errors that name the reason.

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Reasons a server certificate is refused; match them with errors.Is.
var (
	ErrCertificateExpired          = errors.New("certificate expired or not yet valid")
	ErrCertificateWrongHost        = errors.New("certificate is not valid for the requested host name or IP")
	ErrCertificateUnknownAuthority = errors.New("certificate signed by unknown authority")
	ErrCertificateSelfSigned       = errors.New("certificate is self-signed and not trusted")
	ErrCertificateInvalid          = errors.New("certificate invalid")
)

// CertificateError is returned (wrapped in an *AlertError) when the client
// refuses the server's chain. errors.Is matches Reason (and
// ErrCertificateUnknownAuthority for a self-signed certificate);
// errors.As reaches the underlying crypto/x509 error (x509.HostnameError,
// x509.CertificateInvalidError, x509.UnknownAuthorityError).
type CertificateError struct {
	Reason      error
	Err         error
	Certificate *x509.Certificate // the leaf
}

func (e *CertificateError) Error() string {
	return fmt.Sprintf("tlslite: server certificate refused: %v: %v", e.Reason, e.Err)
}

func (e *CertificateError) Unwrap() []error {
	if e.Reason == ErrCertificateSelfSigned {
		return []error{e.Reason, ErrCertificateUnknownAuthority, e.Err}
	}
	return []error{e.Reason, e.Err}
}

// alert maps the reason to the RFC 5246 §7.2.2 alert.
func (e *CertificateError) alert() Alert {
	switch e.Reason {
	case ErrCertificateExpired:
		return AlertCertificateExpired
	case ErrCertificateUnknownAuthority, ErrCertificateSelfSigned:
		return AlertUnknownCA
	}
	return AlertBadCertificate
}

// verifyServerCertificate verifies the chain against roots (nil: the
// system pool), the host name or IP, and the validity period at now.
func verifyServerCertificate(certs []*x509.Certificate, roots *x509.CertPool, serverName string, now time.Time) ([][]*x509.Certificate, *CertificateError) {
	leaf := certs[0]
	opts := x509.VerifyOptions{
		Roots:         roots,
		CurrentTime:   now,
		DNSName:       trimDot(serverName),
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	chains, err := leaf.Verify(opts)
	if err == nil {
		return chains, nil
	}
	ce := &CertificateError{Err: err, Certificate: leaf, Reason: ErrCertificateInvalid}
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var unknown x509.UnknownAuthorityError
	switch {
	case errors.As(err, &hostErr):
		ce.Reason = ErrCertificateWrongHost
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		ce.Reason = ErrCertificateExpired
	case errors.As(err, &unknown):
		ce.Reason = ErrCertificateUnknownAuthority
		if len(certs) == 1 && isSelfSigned(leaf) {
			ce.Reason = ErrCertificateSelfSigned
		}
	}
	return nil, ce
}

func isSelfSigned(c *x509.Certificate) bool {
	return string(c.RawIssuer) == string(c.RawSubject) && c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

// ParseCertificatePEM builds a Certificate from a PEM chain (leaf first)
// and a PEM RSA key (PKCS#1 or PKCS#8).
func ParseCertificatePEM(certPEM, keyPEM []byte) (Certificate, error) {
	var cert Certificate
	for {
		var b *pem.Block
		b, certPEM = pem.Decode(certPEM)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			cert.Chain = append(cert.Chain, b.Bytes)
		}
	}
	if len(cert.Chain) == 0 {
		return cert, errors.New("tlslite: no CERTIFICATE block in PEM")
	}
	var err error
	if cert.Leaf, err = x509.ParseCertificate(cert.Chain[0]); err != nil {
		return cert, err
	}
	for {
		var b *pem.Block
		b, keyPEM = pem.Decode(keyPEM)
		if b == nil {
			return cert, errors.New("tlslite: no private key block in PEM")
		}
		switch b.Type {
		case "RSA PRIVATE KEY":
			cert.PrivateKey, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "PRIVATE KEY":
			var k any
			if k, err = x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
				var ok bool
				if cert.PrivateKey, ok = k.(*rsa.PrivateKey); !ok {
					err = fmt.Errorf("tlslite: private key is %T, want RSA", k)
				}
			}
		default:
			continue
		}
		if err != nil {
			return cert, err
		}
		break
	}
	leafKey, ok := cert.Leaf.PublicKey.(*rsa.PublicKey)
	if !ok || !leafKey.Equal(&cert.PrivateKey.PublicKey) {
		return cert, errors.New("tlslite: private key does not match the certificate")
	}
	return cert, nil
}

// LoadCertificate reads a PEM chain file and a PEM key file.
func LoadCertificate(certFile, keyFile string) (Certificate, error) {
	c, err := os.ReadFile(certFile)
	if err != nil {
		return Certificate{}, err
	}
	k, err := os.ReadFile(keyFile)
	if err != nil {
		return Certificate{}, err
	}
	return ParseCertificatePEM(c, k)
}

// CA is a certificate authority that can issue leaves.
type CA struct {
	Cert *x509.Certificate
	Key  *rsa.PrivateKey
}

// CertOptions tunes NewCA and CA.Issue; the zero value is fine.
type CertOptions struct {
	Rand      io.Reader       // nil: crypto/rand
	Key       *rsa.PrivateKey // reuse a key instead of generating RSA-2048
	NotBefore time.Time       // zero: now - 1h
	NotAfter  time.Time       // zero: NotBefore + 1 year (CA: 10 years)
}

func (o *CertOptions) rand() io.Reader {
	if o != nil && o.Rand != nil {
		return o.Rand
	}
	return rand.Reader
}

func (o *CertOptions) key() (*rsa.PrivateKey, error) {
	if o != nil && o.Key != nil {
		return o.Key, nil
	}
	return rsa.GenerateKey(o.rand(), 2048)
}

func (o *CertOptions) validity(d time.Duration) (time.Time, time.Time) {
	var nb, na time.Time
	if o != nil {
		nb, na = o.NotBefore, o.NotAfter
	}
	if nb.IsZero() {
		nb = time.Now().Add(-time.Hour)
	}
	if na.IsZero() {
		na = nb.Add(d)
	}
	return nb, na
}

func serial(r io.Reader) (*big.Int, error) {
	return rand.Int(r, new(big.Int).Lsh(big.NewInt(1), 127))
}

func subjectKeyID(pub *rsa.PublicKey) []byte {
	h := sha256.Sum256(x509.MarshalPKCS1PublicKey(pub))
	return h[:20]
}

// NewCA creates a self-signed RSA-2048 CA named name.
func NewCA(name string, opts *CertOptions) (*CA, error) {
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name, Organization: []string{"ustack"}},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	cert, key, err := createCertificate(tmpl, nil, true, opts, 10*365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Issue creates an RSA-2048 server leaf for the given IPs and DNS names,
// signed by ca. The returned chain is leaf, CA.
func (ca *CA) Issue(ips []net.IP, names []string, opts *CertOptions) (Certificate, error) {
	cn := "ustack"
	if len(names) > 0 {
		cn = names[0]
	} else if len(ips) > 0 {
		cn = ips[0].String()
	}
	return newLeaf(pkix.Name{CommonName: cn, Organization: []string{"ustack"}}, ips, names, ca, opts)
}

// SelfSigned creates a self-signed RSA leaf (no CA), for tests and labs.
func SelfSigned(ips []net.IP, names []string, opts *CertOptions) (Certificate, error) {
	return newLeaf(pkix.Name{CommonName: "self-signed"}, ips, names, nil, opts)
}

// newLeaf creates a server leaf valid for a year (unless opts say
// otherwise), signed by ca or, when ca is nil, by itself.
func newLeaf(subject pkix.Name, ips []net.IP, names []string, ca *CA, opts *CertOptions) (Certificate, error) {
	tmpl := &x509.Certificate{
		Subject: subject,
		// RSA key exchange needs keyEncipherment, ECDHE_RSA
		// digitalSignature (RFC 5246 §7.4.2).
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: ips,
		DNSNames:    names,
	}
	leaf, key, err := createCertificate(tmpl, ca, ca != nil, opts, 365*24*time.Hour)
	if err != nil {
		return Certificate{}, err
	}
	chain := [][]byte{leaf.Raw}
	if ca != nil {
		chain = append(chain, ca.Cert.Raw)
	}
	return Certificate{Chain: chain, PrivateKey: key, Leaf: leaf}, nil
}

// createCertificate takes the key from opts (or makes one), completes tmpl
// with a serial number, the validity (lifetime unless opts set it) and,
// with keyID, the subject key identifier, and signs it with ca or, when ca
// is nil, with its own key.
func createCertificate(tmpl *x509.Certificate, ca *CA, keyID bool, opts *CertOptions, lifetime time.Duration) (*x509.Certificate, *rsa.PrivateKey, error) {
	key, err := opts.key()
	if err != nil {
		return nil, nil, err
	}
	if tmpl.SerialNumber, err = serial(opts.rand()); err != nil {
		return nil, nil, err
	}
	tmpl.NotBefore, tmpl.NotAfter = opts.validity(lifetime)
	if keyID {
		tmpl.SubjectKeyId = subjectKeyID(&key.PublicKey)
	}
	parent, signer := tmpl, key
	if ca != nil {
		parent, signer = ca.Cert, ca.Key
	}
	der, err := x509.CreateCertificate(opts.rand(), tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// EncodePEM returns the chain and key as PEM (key in PKCS#1).
func (c Certificate) EncodePEM() (certPEM, keyPEM []byte) {
	for _, der := range c.Chain {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(c.PrivateKey)})
	return certPEM, keyPEM
}

// Dir is the content of a --tls-dir: the CA (ca.pem), the server chain
// (cert.pem) and its key (key.pem).
type Dir struct {
	Path        string
	CA          *x509.Certificate
	Certificate Certificate
	Roots       *x509.CertPool // holds CA, for clients
	Created     bool           // the files were created by this call
}

// LoadOrCreateDir loads ca.pem, cert.pem and key.pem from dir if all three
// exist; otherwise it creates a CA and an RSA-2048 leaf for ips and names,
// writes the three files (the key with mode 0600) and returns them.
func LoadOrCreateDir(dir string, ips []net.IP, names []string) (*Dir, error) {
	caPath, certPath, keyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if exists(caPath) && exists(certPath) && exists(keyPath) {
		caPEM, err := os.ReadFile(caPath)
		if err != nil {
			return nil, err
		}
		b, _ := pem.Decode(caPEM)
		if b == nil {
			return nil, fmt.Errorf("tlslite: %s: no PEM block", caPath)
		}
		ca, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tlslite: %s: %w", caPath, err)
		}
		cert, err := LoadCertificate(certPath, keyPath)
		if err != nil {
			return nil, err
		}
		roots := x509.NewCertPool()
		roots.AddCert(ca)
		return &Dir{Path: dir, CA: ca, Certificate: cert, Roots: roots}, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ca, err := NewCA("ustack test CA", nil)
	if err != nil {
		return nil, err
	}
	cert, err := ca.Issue(ips, names, nil)
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM := cert.EncodePEM()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
	if err := os.WriteFile(caPath, caPEM, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	return &Dir{Path: dir, CA: ca.Cert, Certificate: cert, Roots: roots, Created: true}, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// certCache keeps parsed peer certificates, since a client usually sees
// the same chain again (crypto/tls does the same). Bounded: cleared when
// full. Parsed certificates are shared read-only.
var certCache struct {
	sync.Mutex
	m map[string]*x509.Certificate
}

const certCacheSize = 256

func parseCertificateCached(der []byte) (*x509.Certificate, error) {
	certCache.Lock()
	c, ok := certCache.m[string(der)]
	certCache.Unlock()
	if ok {
		return c, nil
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	certCache.Lock()
	if certCache.m == nil || len(certCache.m) >= certCacheSize {
		certCache.m = make(map[string]*x509.Certificate)
	}
	certCache.m[string(der)] = c
	certCache.Unlock()
	return c, nil
}
