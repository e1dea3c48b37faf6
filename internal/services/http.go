package services

import (
	"context"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"ustack/stack"
	"ustack/stack/tcp"
	"ustack/tlslite"
)

// HTTP serves Handler(page) with net/http on l until Close.
func (s *Server) HTTP(l net.Listener, page string) {
	srv := &http.Server{
		Handler:           Handler(page),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          s.ErrorLog,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
		ConnState: s.httpConnState,
	}
	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.https = append(s.https, srv)
	}
	s.mu.Unlock()
	if closed {
		return
	}
	srv.Serve(l)
}

// httpConnState prepares and tracks the HTTP servers' connections, so
// that Stop and Close reach them too.
func (s *Server) httpConnState(c net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		s.prepare(c)
		if !s.track(c, true) {
			rawConn(c).Close() // the server is stopping
		}
	case http.StateClosed, http.StateHijacked:
		s.track(c, false)
	}
}

type connKey struct{}

// Handler is the HTTP service. GET / answers page as plain text, or if
// page is empty an HTML page that shows the visitor its own connection as
// ustack sees it; GET /bytes/N answers N bytes of a fixed pattern.
func Handler(page string) http.Handler {
	mux := http.NewServeMux()
	if page == "" {
		mux.HandleFunc("/", connPage)
	} else {
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, page)
		})
	}
	mux.HandleFunc("/bytes/{n}", bytesPage)
	return mux
}

// connPage writes the visitor's connection as ustack sees it. It is built
// by hand, not with html/template: the template's reflection cost three
// times the rest of a keep-alive request (15k against 48k requests/s with
// wrk on one core), and this page is what `ustack serve --http` answers.
func connPage(w http.ResponseWriter, r *http.Request) {
	nc, _ := r.Context().Value(connKey{}).(net.Conn)
	var tlsInfo string
	if tc, ok := nc.(*tlslite.Conn); ok {
		cs := tc.ConnectionState()
		tlsInfo = fmt.Sprintf("TLS 1.2, %s, extended master secret %v, resumed %v", tlslite.CipherSuiteName(cs.CipherSuite), cs.ExtendedMasterSecret, cs.DidResume)
		nc = tc.NetConn()
	}
	c, ok := nc.(*stack.Conn)
	if !ok {
		http.Error(w, "not a ustack connection", http.StatusInternalServerError)
		return
	}
	bp := pageBufs.Get().(*[]byte)
	in := c.Info()
	b := appendConnPage((*bp)[:0], c.LocalAddr().String(), c.RemoteAddr().String(), in, tlsInfo)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Ustack-Connection", c.ID().String()+" state="+in.State.String())
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
	*bp = b
	pageBufs.Put(bp)
}

var pageBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

const pageHead = `<!doctype html>
<html><head><title>ustack: your connection</title></head>
<body>
<h1>Hello from ustack</h1>
<p>This page was served over a TCP stack written in Go, running in user space behind a TUN device.
Here is your connection as ustack sees it right now.</p>
<table>
`

// appendConnPage appends the page for a connection to b; every value is
// HTML-escaped.
func appendConnPage(b []byte, local, remote string, in tcp.Info, tlsInfo string) []byte {
	b = append(b, pageHead...)
	row := func(th string, parts ...string) {
		b = append(b, "<tr><th>"...)
		b = append(b, th...)
		b = append(b, "</th><td>"...)
		for _, p := range parts {
			b = append(b, html.EscapeString(p)...)
		}
		b = append(b, "</td></tr>\n"...)
	}
	itoa, dur := strconv.Itoa, time.Duration.String
	row("you", remote)
	row("ustack", local)
	row("state", in.State.String())
	row("smoothed RTT", dur(in.SRTT), " (variance ", dur(in.RTTVar), ", RTO ", dur(in.RTO), ")")
	row("congestion window", itoa(in.Cwnd), " bytes (", in.CC, ", ssthresh ", itoa(in.Ssthresh), ")")
	row("send MSS", itoa(in.SndMSS))
	row("windows", "send ", strconv.FormatUint(uint64(in.SndWnd), 10), ", receive ", strconv.FormatUint(uint64(in.RcvWnd), 10))
	row("segments", "in ", strconv.FormatUint(in.Stats.SegsIn, 10), ", out ", strconv.FormatUint(in.Stats.SegsOut, 10))
	row("retransmissions", strconv.FormatUint(in.Stats.Retransmits, 10))
	row("ISS / IRS", strconv.FormatUint(uint64(in.ISS), 10), " / ", strconv.FormatUint(uint64(in.IRS), 10))
	row("options", "window scale ", in.WindowScale[0].String(), "/", in.WindowScale[1].String(),
		", timestamps ", strconv.FormatBool(in.Timestamps), ", SACK ", strconv.FormatBool(in.SACK))
	if tlsInfo != "" {
		row("TLS", tlsInfo)
	}
	return append(b, "</table>\n</body></html>\n"...)
}

// MaxBytes bounds /bytes/N.
const MaxBytes = 16 << 30

// bytesPage serves N bytes of a fixed pattern (byte i is i mod 251), for
// transfer tests that check what arrived: GET /bytes/104857600.
func bytesPage(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.ParseInt(r.PathValue("n"), 10, 64)
	if err != nil || n < 0 || n > MaxBytes {
		http.Error(w, "want /bytes/N with 0 <= N <= 17179869184", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	buf := pattern[:]
	for n > 0 {
		k := min(n, int64(len(buf)))
		if _, err := w.Write(buf[:k]); err != nil {
			return
		}
		n -= k
	}
}
