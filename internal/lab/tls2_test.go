package lab

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"ustack/internal/ladder"
	"ustack/tlslite"
)

func init() {
	labDocNotes["forward-secrecy"] = "One server key, two recorded sessions: TLS_RSA_WITH_AES_128_GCM_SHA256 and TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 with X25519. Later, given only the recording and the server's private key, the lab decrypts the RSA session's ClientKeyExchange to the pre-master secret, derives the master secret (RFC 7627's, over the hash of the recorded handshake) and the keys with tlslite.SessionKeys, and reads the HTTP request and response. In the ECDHE session the key only signed the server's ephemeral share: the ClientKeyExchange does not decrypt and the records stay opaque; only the ephemeral secret, which the lab copied during the handshake, opens them. The tests check the same with tshark, given the key file."
	labDocNotes["resumption"] = "Each of the server's packets is held 40 ms, so that round trips show in the times. A full handshake (RFC 5246 §7.3 Figure 1); then the same client resumes by session ID (Figure 2): Certificate, ServerKeyExchange, ServerHelloDone and ClientKeyExchange disappear, the server sends ChangeCipherSpec and Finished first, and the client may send data after 1 round trip instead of 2. Then a client that takes tickets (RFC 5077) gets a NewSessionTicket and resumes with it; a server with another ticket key cannot open the ticket and falls back to a full handshake."
}

// quietRun is a labRun whose story goes to a buffer.
func quietRun(name string) (*labRun, *bytes.Buffer) {
	var out bytes.Buffer
	return newLabRun(&out, ladder.NewText(&out, false), Options{Lang: "en"}, name), &out
}

// TestLabChineseTLS2: the two labs narrate with the textbook's terms.
func TestLabChineseTLS2(t *testing.T) {
	want := map[string][]string{
		"forward-secrecy": {"前向保密", "预主密钥", "主密钥", "私钥", "PASS"},
		"resumption":      {"会话恢复", "会话票据", "会话 ID", "往返", "PASS"},
	}
	for name, words := range want {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			code, out, _ := runLabCmd(t, Options{Lang: "zh"}, name)
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			for _, w := range words {
				if !strings.Contains(out, w) {
					t.Errorf("no %q in:\n%s", w, out)
				}
			}
		})
	}
}

var labVerb = regexp.MustCompile(`%[-+# 0-9.]*[a-zA-Z%]`)

// TestLabZHTLS2Complete: every message the two labs say, check or title
// has a translation with the same verbs in the same order.
func TestLabZHTLS2Complete(t *testing.T) {
	var msgs []string
	fset := token.NewFileSet()
	for _, file := range []string{"fs.go", "resume.go"} {
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			arg := map[string]int{"say": 0, "section": 0, "T": 0, "check": 1}
			i, ok := arg[sel.Sel.Name]
			if !ok || len(call.Args) <= i {
				return true
			}
			if lit, ok := call.Args[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				s, _ := strconv.Unquote(lit.Value)
				msgs = append(msgs, s)
			}
			return true
		})
	}
	for _, name := range []string{"forward-secrecy", "resumption"} {
		sc, _ := byName(name)
		msgs = append(msgs, sc.title, sc.desc, sc.answer)
	}
	msgs = append(msgs, "1. a full handshake (a client without tickets)", "5. the ticket, to a server with another ticket key")
	if len(msgs) < 50 {
		t.Fatalf("found %d messages; the check sees nothing", len(msgs))
	}
	for _, m := range msgs {
		if m == "%s" {
			continue
		}
		if _, ok := labZH[m]; !ok {
			t.Errorf("no translation for %q", m)
		}
	}
	for en, zh := range labZHTLS2 {
		if a, b := labVerb.FindAllString(en, -1), labVerb.FindAllString(zh, -1); !slices.Equal(a, b) {
			t.Errorf("verbs %q, translated %q: %q", a, b, en)
		}
	}
}

// TestLabForwardSecrecyWrongKey: the RSA claims fail when the private key
// is not the one the session used: they check something.
func TestLabForwardSecrecyWrongKey(t *testing.T) {
	r, out := quietRun("forward-secrecy")
	env, done, err := r.tlsEnvMem()
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	run, err := r.fsRecord(env)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	pk := r.rec.Packets()
	rsaWire := parseLabWire(labConnPkts(pk, run.sessions[0].port))
	ca, err := labCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	r.claims = nil
	r.fsBreakRSA(run.sessions[0], rsaWire, ca.Key)
	if len(r.claims) != 1 || r.claims[0].ok {
		t.Fatalf("another key: %+v\n%s", r.claims, out)
	}
	// The right key passes, the ECDHE session's claims too.
	r.claims = nil
	r.fsBreakRSA(run.sessions[0], rsaWire, run.cert.PrivateKey)
	r.fsTryECDHE(run.sessions[1], parseLabWire(labConnPkts(pk, run.sessions[1].port)), run.cert.PrivateKey)
	for _, c := range r.claims {
		if !c.ok {
			t.Errorf("claim failed: %s\n%s", c.text, out)
		}
	}
	// The control is what makes "opaque" mean something: with the
	// ephemeral secret the same code opens the ECDHE session.
	ecdhe := parseLabWire(labConnPkts(pk, run.sessions[1].port))
	if _, _, _, ok := r.fsDecrypt(ecdhe, ecdhe.hello(), run.sessions[1].keys.PreMasterSecret); !ok {
		t.Fatal("the ephemeral secret does not open the ECDHE session")
	}
	if _, _, _, ok := r.fsDecrypt(ecdhe, ecdhe.hello(), make([]byte, 32)); ok {
		t.Fatal("a zero pre-master secret opens the ECDHE session")
	}
}

// TestLabResumptionClaims: the claims hold for connections that behave as
// RFC 5246 §7.3 says, and fail for a server that never resumes.
func TestLabResumptionClaims(t *testing.T) {
	full := []string{"→ClientHello", "←ServerHello", "←Certificate", "←ServerKeyExchange", "←ServerHelloDone",
		"→ClientKeyExchange", "→ChangeCipherSpec", "→Finished", "←ChangeCipherSpec", "←Finished", "→ApplicationData"}
	fullT := slices.Insert(slices.Clone(full), 8, "←NewSessionTicket")
	short := []string{"→ClientHello", "←ServerHello", "←ChangeCipherSpec", "←Finished", "→ChangeCipherSpec", "→Finished", "→ApplicationData"}
	id := bytes.Repeat([]byte{7}, 32)
	rtt := 40 * time.Millisecond
	st := func(resumed, ticket bool) tlslite.ConnectionState {
		return tlslite.ConnectionState{DidResume: resumed, ResumedWithTicket: ticket}
	}
	good := []resConn{
		{seq: full, flights: 2, echoedID: id, rtt: rtt, ready: 2 * rtt, answered: true},
		{seq: short, flights: 1, offeredID: id, echoedID: id, cli: st(true, false), srv: st(true, false), rtt: rtt, ready: rtt, answered: true},
		{seq: fullT, flights: 2, echoedID: id, ticket: []byte("t"), rtt: rtt, ready: 2 * rtt, answered: true},
		{seq: short, flights: 1, offeredTicket: true, cli: st(true, true), srv: st(true, true), rtt: rtt, ready: rtt, answered: true},
		{seq: fullT, flights: 2, offeredTicket: true, rtt: rtt, ready: 2 * rtt, answered: true},
	}
	r, out := quietRun("resumption")
	r.resumeClaims(good)
	for _, c := range r.claims {
		if !c.ok {
			t.Errorf("claim failed: %s\n%s", c.text, out)
		}
	}
	// A server that never resumes: every connection is a full handshake.
	never := slices.Clone(good)
	never[1] = resConn{seq: full, flights: 2, offeredID: id, rtt: rtt, ready: 2 * rtt, answered: true}
	never[3] = resConn{seq: fullT, flights: 2, offeredTicket: true, rtt: rtt, ready: 2 * rtt, answered: true}
	r, out = quietRun("resumption")
	r.resumeClaims(never)
	failed := 0
	for _, c := range r.claims {
		if !c.ok {
			failed++
		}
	}
	if ok, _ := r.verdict(); ok || failed < 5 {
		t.Errorf("a server that never resumes: %d claims failed\n%s", failed, out)
	}
}
