package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestDemoInMemoryTellsTheStory: the no-root demo shows the handshake, the
// response, the close and TIME-WAIT ending in CLOSED, in that order.
func TestDemoInMemoryTellsTheStory(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"demo", "--in-memory"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	s := out.String()
	if !strings.Contains(s, `response: "HTTP/1.1 200 OK", body "hello from ustack, over TLS 1.2\n"`) {
		t.Fatalf("no response in the demo:\n%s", s)
	}
	steps := []string{
		"in-memory link",
		"── SYN seq=0", "server: LISTEN →", "SYN+ACK seq=0 ack=1", "client: SYN-SENT → ESTABLISHED",
		"server: SYN-RECEIVED →",
		"TLS ClientHello", "client random", "TLS ServerHello", "server random", "TLS Certificate", "RSA public key",
		"TLS ServerHelloDone", "TLS ClientKeyExchange", "encrypted with the server's public key",
		"server decrypted the pre-master secret", "master secret = PRF", "session keys",
		"TLS ChangeCipherSpec", "TLS Finished", "TLS ChangeCipherSpec", "TLS Finished",
		"TLS encrypted request", "TLS encrypted response", "close_notify",
		"server: ESTABLISHED →", "FIN-WAIT-1", "client: ESTABLISHED → CLOSE-WAIT",
		"client: CLOSE-WAIT → LAST-ACK", "server: FIN-WAIT-2 →", "TIME-WAIT",
		"server: TIME-WAIT →", "CLOSED", "done",
	}
	pos := 0
	for _, step := range steps {
		i := strings.Index(s[pos:], step)
		if i < 0 {
			t.Fatalf("demo output lacks %q after position %d:\n%s", step, pos, s)
		}
		pos += i + len(step)
	}
}

// TestServeFlagErrors: command-line mistakes exit 2 and say how to fix them.
func TestServeFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"serve"}, "no service to run"},
		{[]string{"serve", "--echo", "7", "--addr", "nonsense"}, "--addr \"nonsense\" is not an IPv4 address"},
		{[]string{"serve", "--echo", "7", "--addr", "10.0.0.9"}, "outside --host-addr"},
		{[]string{"serve", "--echo", "7", "--http", "7"}, "both use port 7"},
		{[]string{"serve", "--echo", "70000"}, "is not a port"},
		{[]string{"serve", "--echo", "7", "--impair", "lose=0.1"}, "unknown key"},
		{[]string{"serve", "--echo", "7", "--mtu", "20"}, "--mtu 20 is out of range"},
		{[]string{"serve", "--bogus"}, "flag provided but not defined"},
		{[]string{"nosuch"}, "unknown command"},
		{[]string{"get"}, "missing URL"},
		{[]string{"get", "ftp://x/"}, "is not an http:// or https:// URL"},
	} {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("ustack %v: exit %d, stderr %q; want exit 2 and %q", c.args, code, errb.String(), c.want)
		}
	}
}
