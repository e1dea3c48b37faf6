package services

import (
	"bytes"
	"encoding/binary"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"ustack/internal/waitfor"
	"ustack/stack/tcp"
)

// serve runs one service on a loopback listener and dials it.
func serve(t *testing.T, s *Server, fn func(net.Listener)) net.Conn {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Go(l, fn)
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

func TestEcho(t *testing.T) {
	s := &Server{NoDelay: true}
	defer s.Close()
	c := serve(t, s, s.Handle(Echo))
	msg := bytes.Repeat([]byte("echo "), 20000)
	go c.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo: %v", err)
	}
	c.(*net.TCPConn).CloseWrite()
	if n, err := c.Read(got); n != 0 || err != io.EOF {
		t.Fatalf("after our FIN: %d, %v; want EOF", n, err)
	}
}

func TestDiscard(t *testing.T) {
	s := &Server{}
	defer s.Close()
	c := serve(t, s, s.Handle(Discard))
	if _, err := c.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	if n, err := io.Copy(io.Discard, c); n != 0 || err != nil {
		t.Fatalf("discard sent %d bytes, %v", n, err)
	}
}

func TestSource(t *testing.T) {
	s := &Server{}
	defer s.Close()
	c := serve(t, s, s.Handle(Source))
	got := make([]byte, 200000)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	for i, b := range got {
		if b != byte(i) {
			t.Fatalf("byte %d is %d, want %d", i, b, byte(i))
		}
	}
}

func TestSized(t *testing.T) {
	s := &Server{}
	defer s.Close()
	c := serve(t, s, s.Handle(Sized))
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], 300000)
	c.Write(hdr[:])
	got, err := io.ReadAll(c)
	if err != nil || len(got) != 300000 {
		t.Fatalf("got %d bytes, %v", len(got), err)
	}
	for i, b := range got {
		if b != byte(i%251) {
			t.Fatalf("byte %d is %d", i, b)
		}
	}
}

// TestHoldAndClose: held connections are counted, and Close ends them
// and every other connection.
func TestHoldAndClose(t *testing.T) {
	s := &Server{}
	c := serve(t, s, s.Hold)
	e := serve(t, s, s.Handle(Echo))
	if !waitfor.Within(5*time.Second, func() bool { return s.Held() == 1 }) {
		t.Fatalf("held %d", s.Held())
	}
	e.Write([]byte("x"))
	io.ReadFull(e, make([]byte, 1))
	s.Close()
	for _, conn := range []net.Conn{c, e} {
		if _, err := conn.Read(make([]byte, 1)); err == nil {
			t.Errorf("a connection outlived Close")
		}
	}
}

func TestHandler(t *testing.T) {
	get := func(h http.Handler, path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		return w
	}
	h := Handler("hello\n")
	if w := get(h, "/"); w.Code != 200 || w.Body.String() != "hello\n" {
		t.Errorf("GET /: %d %q", w.Code, w.Body.String())
	}
	w := get(h, "/bytes/1000")
	if w.Code != 200 || w.Body.Len() != 1000 || w.Header().Get("Content-Length") != "1000" || w.Body.Bytes()[252] != 1 {
		t.Errorf("GET /bytes/1000: %d, %d bytes", w.Code, w.Body.Len())
	}
	for _, bad := range []string{"/bytes/-1", "/bytes/x", "/bytes/17179869185"} {
		if w := get(h, bad); w.Code != 400 {
			t.Errorf("GET %s: %d, want 400", bad, w.Code)
		}
	}
	// The connection page wants a ustack connection.
	if w := get(Handler(""), "/"); w.Code != 500 {
		t.Errorf("connection page off ustack: %d, want 500", w.Code)
	}
}

// TestHTTP serves the handler through Server.HTTP.
func TestHTTP(t *testing.T) {
	s := &Server{}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Go(l, func(l net.Listener) { s.HTTP(l, "page\n") })
	resp, err := http.Get("http://" + l.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	s.Close()
	if string(body) != "page\n" {
		t.Errorf("body %q", body)
	}
}

// The connection page shows the TCB's figures, escaped.
func TestConnPageEscapes(t *testing.T) {
	in := tcp.Info{State: tcp.Established, Cwnd: 14600, CC: "cubic<b>", SndMSS: 1460, SRTT: 3 * time.Millisecond}
	in.Stats.Retransmits = 7
	page := string(appendConnPage(nil, "198.18.0.2:80", "198.18.0.1:4242", in, "TLS 1.2 & more"))
	for _, want := range []string{
		"<tr><th>state</th><td>ESTABLISHED</td></tr>",
		"<tr><th>congestion window</th><td>14600 bytes (cubic&lt;b&gt;, ssthresh 0)</td></tr>",
		"<tr><th>retransmissions</th><td>7</td></tr>",
		"<tr><th>you</th><td>198.18.0.1:4242</td></tr>",
		"<tr><th>TLS</th><td>TLS 1.2 &amp; more</td></tr>",
		"smoothed RTT</th><td>3ms",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	for _, v := range []string{"", "plain", `<a href="x">'&'</a>`, "&&<<>>\"\"''"} {
		if got := string(pageRow(nil).s(v)); got != html.EscapeString(v) {
			t.Errorf("escaped %q as %q, html.EscapeString gives %q", v, got, html.EscapeString(v))
		}
	}
	if strings.Contains(appendString(in), "<tr><th>TLS") {
		t.Error("a plain connection's page has a TLS row")
	}
}

func appendString(in tcp.Info) string { return string(appendConnPage(nil, "a", "b", in, "")) }

// BenchmarkConnPage is the page `ustack serve --http` answers, built once.
func BenchmarkConnPage(b *testing.B) {
	b.ReportAllocs()
	buf := make([]byte, 0, 4096)
	in := tcp.Info{State: tcp.Established, Cwnd: 14600, CC: "cubic"}
	for b.Loop() {
		buf = appendConnPage(buf[:0], "198.18.0.2:80", "198.18.0.1:4242", in, "")
	}
}
