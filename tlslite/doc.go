// Package tlslite is a minimal TLS 1.2 (RFC 5246) client and server over any
// net.Conn, written for ustack and its teaching labs. It never imports the
// rest of ustack.
//
// What it speaks:
//
//   - Suites TLS_ECDHE_RSA_WITH_AES_{128,256}_GCM_{SHA256,SHA384} (X25519 and
//     P-256, RFC 8422/5289) and TLS_RSA_WITH_AES_{128,256}_GCM_{SHA256,SHA384}
//     (RSA key exchange, RFC 5246 §7.4.7.1, with the constant-time
//     pre-master secret handling of that section). The server's order
//     decides (Config.CipherSuites); Config.KeyExchange restricts it to RSA
//     or ECDHE (the CLI's --kex rsa|ecdhe|any; "any" prefers ECDHE).
//   - Extensions: server_name, ALPN (no_application_protocol when nothing
//     overlaps), extended_master_secret (RFC 7627; used whenever offered and
//     required by the client unless Config.AllowNoExtendedMasterSecret),
//     renegotiation_info (RFC 5746; every renegotiation is refused with a
//     no_renegotiation warning and the connection carries on),
//     session_ticket (RFC 5077), signature_algorithms, supported_groups,
//     ec_point_formats. A client offering TLS 1.3 is answered with TLS 1.2.
//   - Resumption by session ID (bounded LRU server cache) and by ticket
//     (AES-256-GCM sealed, rotating keys); on the client through a
//     ClientSessionCache.
//
// API:
//
//	Server(conn, cfg) / Client(conn, cfg) *Conn      // *Conn is a net.Conn
//	(*Conn).Handshake(ctx) error                      // else runs on first Read/Write
//	(*Conn).ConnectionState() ConnectionState
//	(*Conn).CloseWrite() error                        // close_notify, half close
//	NewListener(inner net.Listener, cfg) net.Listener // net/http serves HTTPS on it
//	Listen(network, addr, cfg)
//	(&Dialer{Config: cfg, Dial: innerDial}).DialContext(ctx, network, addr)
//	                                                  // fits http.Transport.DialTLSContext
//	LoadCertificate, ParseCertificatePEM, NewCA, (*CA).Issue, SelfSigned,
//	LoadOrCreateDir(dir, ips, names)                  // --tls-dir: ca.pem cert.pem key.pem
//	NewLRUClientSessionCache(n)
//	OpenRecord / SealRecord / PRF / SessionKeys / KeyLogLine // for the labs
//
// Config.Rand and Config.Time are injectable, as in crypto/tls.
// Config.KeyLogWriter writes NSS key log lines (SSLKEYLOGFILE) on both
// sides. Config.Observer receives a typed Event for every handshake
// message (ClientHelloEvent, ServerHelloEvent, CertificateEvent, ...,
// FinishedEvent, with the randoms, the certificates, the encrypted
// pre-master secret or the ECDHE shares), ChangeCipherSpec, alert and
// application-data record, and a KeysEvent with the pre-master secret, the
// master secret and the write keys and IVs: enough to draw a ladder
// diagram and to decrypt captured records with OpenRecord. Events are
// built only when an Observer is set, and secrets leave tlslite only
// through the Observer and the KeyLogWriter the caller set.
//
// Errors: a fatal alert, sent or received, is an *AlertError (errors.Is
// also matches the Alert value). A refused server certificate is a
// *CertificateError whose reason matches ErrCertificateExpired,
// ErrCertificateWrongHost, ErrCertificateUnknownAuthority or
// ErrCertificateSelfSigned with errors.Is, and whose crypto/x509 error is
// reachable with errors.As.
//
// Divergences, on purpose: the server does not set the RFC 8446 §4.1.3
// downgrade sentinel by default, because it is not a TLS 1.3 server and
// every TLS 1.3 client (curl, openssl, Go) aborts on seeing it
// (Config.DowngradeSentinel turns it on for the downgrade lab); our client
// offers only TLS 1.2, so it accepts "DOWNGRD\x01" and refuses
// "DOWNGRD\x00". Client certificates are not supported (a
// CertificateRequest is answered with an empty Certificate).
package tlslite
