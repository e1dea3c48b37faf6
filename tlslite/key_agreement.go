package tlslite

// Key exchange: RSA (RFC 5246 §7.4.7.1, §8.1.1) and ECDHE_RSA (RFC 8422
// §2.2, §5.4, §5.7) with X25519 and P-256 (crypto/ecdh); the
// ServerKeyExchange signature (RFC 5246 §4.7, §7.4.3, §7.4.1.4.1).

import (
	"crypto"
	"crypto/ecdh"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"io"
	"slices"
)

// rsaPreMasterSecret recovers the pre-master secret from a
// ClientKeyExchange ciphertext as RFC 5246 §7.4.7.1 requires: on any
// failure (bad padding, wrong length, wrong client_version inside) it
// continues with a random 48-byte value, so that the only observable
// outcome is a Finished that does not verify. There is no early return, no
// error and no alert that depends on the plaintext:
// rsa.DecryptPKCS1v15SessionKey is constant-time and leaves key unchanged
// when the padding is wrong, and the version check and the choice between
// M and R use crypto/subtle.
func rsaPreMasterSecret(rand io.Reader, priv *rsa.PrivateKey, ciphertext []byte, clientVersion uint16) ([]byte, error) {
	// 1. Generate a string R of 48 random bytes.
	r := make([]byte, 48)
	if _, err := io.ReadFull(rand, r); err != nil {
		return nil, err
	}
	// 2-3. Decrypt; keep R if the padding is not correct or the message is
	// not exactly 48 bytes. The error (a wrong ciphertext length, which is
	// public) is deliberately ignored.
	key := slices.Clone(r)
	_ = rsa.DecryptPKCS1v15SessionKey(nil, priv, ciphertext, key)
	// 4. If M[0..1] != ClientHello.client_version, use R.
	good := subtle.ConstantTimeByteEq(key[0], byte(clientVersion>>8)) & subtle.ConstantTimeByteEq(key[1], byte(clientVersion))
	subtle.ConstantTimeCopy(1-good, key, r)
	return key, nil
}

// rsaEncryptPreMaster is the client side: pre_master_secret =
// client_version(2) + random(46), encrypted with RSAES-PKCS1-v1_5.
func rsaEncryptPreMaster(rand io.Reader, pub *rsa.PublicKey, clientVersion uint16) (preMaster, ciphertext []byte, err error) {
	preMaster = make([]byte, 48)
	preMaster[0], preMaster[1] = byte(clientVersion>>8), byte(clientVersion)
	if _, err := io.ReadFull(rand, preMaster[2:]); err != nil {
		return nil, nil, err
	}
	ciphertext, err = rsa.EncryptPKCS1v15(rand, pub, preMaster)
	return preMaster, ciphertext, err
}

func curveFor(id CurveID) ecdh.Curve {
	switch id {
	case X25519:
		return ecdh.X25519()
	case CurveP256:
		return ecdh.P256()
	}
	return nil
}

// signatureOpts holds the hash and the padding of each RSA signature
// scheme (RFC 5246 §7.4.1.4.1; RSASSA-PSS as in RFC 8446 §4.2.3): a
// crypto.Hash means PKCS #1 v1.5, *rsa.PSSOptions means PSS.
var signatureOpts = map[SignatureScheme]crypto.SignerOpts{
	PKCS1WithSHA1:   crypto.SHA1,
	PKCS1WithSHA256: crypto.SHA256,
	PKCS1WithSHA384: crypto.SHA384,
	PKCS1WithSHA512: crypto.SHA512,
	PSSWithSHA256:   &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256},
	PSSWithSHA384:   &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA384},
	PSSWithSHA512:   &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA512},
}

var errUnsupportedScheme = errors.New("tlslite: unsupported signature scheme")

// signedDigest hashes client_random + server_random + ServerECDHParams,
// what the ServerKeyExchange signature covers (RFC 8422 §5.4), with the
// hash of m's signature scheme, which the caller has checked.
func (m *serverKeyExchangeMsg) signedDigest(clientRandom, serverRandom []byte) []byte {
	d := signatureOpts[m.sigScheme].HashFunc().New()
	d.Write(clientRandom)
	d.Write(serverRandom)
	d.Write(m.params())
	return d.Sum(nil)
}

func signParams(rand io.Reader, priv *rsa.PrivateKey, s SignatureScheme, digest []byte) ([]byte, error) {
	opts, ok := signatureOpts[s]
	if !ok {
		return nil, errUnsupportedScheme
	}
	return priv.Sign(rand, digest, opts)
}

func verifyParams(pub *rsa.PublicKey, s SignatureScheme, digest, sig []byte) error {
	switch opts := signatureOpts[s].(type) {
	case *rsa.PSSOptions:
		return rsa.VerifyPSS(pub, opts.Hash, digest, sig, opts)
	case crypto.Hash:
		return rsa.VerifyPKCS1v15(pub, opts, digest, sig)
	}
	return errUnsupportedScheme
}

// pickSignatureScheme chooses ours in preference order among the client's
// signature_algorithms; without the extension RFC 5246 §7.4.1.4.1 says to
// assume {sha1,rsa}.
func pickSignatureScheme(offered []SignatureScheme) (SignatureScheme, bool) {
	if len(offered) == 0 {
		return PKCS1WithSHA1, true
	}
	for _, s := range supportedSignatureSchemes {
		if slices.Contains(offered, s) {
			return s, true
		}
	}
	return 0, false
}
