package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestCurl: curl fetches the HTTP service's page, which shows curl its own
// connection as ustack sees it.
func TestCurl(t *testing.T) {
	requireRoot(t)
	requireTool(t, "curl")
	ns := newNamespace(t)
	startServe(t, ns, "--http", httpPort)
	out, err := runIn(t, ns, 20*time.Second, "curl", "-sS", "-i", "--max-time", "10", "http://"+stackAddr+"/")
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	head, body, _ := strings.Cut(strings.ReplaceAll(out, "\r\n", "\n"), "\n\n")
	if !strings.HasPrefix(head, "HTTP/1.1 200 OK") {
		t.Errorf("status: %q, want HTTP/1.1 200 OK", strings.SplitN(head, "\n", 2)[0])
	}
	var conn string
	for _, h := range strings.Split(head, "\n") {
		if k, v, ok := strings.Cut(h, ":"); ok && strings.EqualFold(k, "X-Ustack-Connection") {
			conn = strings.TrimSpace(v)
		}
	}
	if !strings.HasPrefix(conn, stackAddr+":"+httpPort+"<->"+hostAddr+":") || !strings.Contains(conn, "ESTABLISHED") {
		t.Errorf("X-Ustack-Connection: %q, want %s:%s<->%s:PORT state=ESTABLISHED", conn, stackAddr, httpPort, hostAddr)
	}
	if !strings.Contains(body, "ustack") || !strings.Contains(body, hostAddr) {
		t.Errorf("page does not mention ustack and the visitor %s:\n%s", hostAddr, body)
	}
}

// TestGet: `ustack get` fetches a page from a Go net/http server on the
// kernel side of its own TUN device.
func TestGet(t *testing.T) {
	requireRoot(t)
	ns := newNamespace(t)
	const (
		getAddr  = "198.18.1.2"
		getHost  = "198.18.1.1"
		getHostP = getHost + "/30"
		getDev   = devPrefix + "g0"
	)
	var tok [16]byte
	rand.Read(tok[:])
	body := "hello from the kernel side " + hex.EncodeToString(tok[:]) + "\n"
	// The server listens before ustack gives the kernel side its address.
	l := listenIn(t, ns, net.JoinHostPort(getHost, "8080"))
	visitors := make(chan string, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case visitors <- r.RemoteAddr + " " + r.URL.Path:
		default:
		}
		fmt.Fprint(w, body)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := ns.Command(ctx, ustackBin, "get", "http://"+getHost+":8080/page",
		"--tun", getDev, "--addr", getAddr, "--host-addr", getHostP, "--trace", "--timeout", "30s")
	cmd.WaitDelay = time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		t.Fatalf("ustack get: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if stdout.String() != body {
		t.Errorf("ustack get printed %q, want %q", stdout.String(), body)
	}
	select {
	case v := <-visitors:
		if !strings.HasPrefix(v, getAddr+":") || !strings.HasSuffix(v, " /page") {
			t.Errorf("the server saw %q, want a request for /page from %s", v, getAddr)
		}
	default:
		t.Errorf("the server saw no request")
	}
	if !strings.Contains(stderr.String(), "SYN-SENT -> ESTABLISHED") {
		t.Errorf("ustack get --trace shows no active open:\n%s", stderr.String())
	}
	if out, err := runIn(t, ns, 10*time.Second, "ip", "-o", "link", "show", "dev", getDev); err == nil {
		t.Errorf("TUN device %s still exists after ustack get exited:\n%s", getDev, out)
	}
}
