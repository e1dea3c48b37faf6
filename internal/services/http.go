package services

import (
	"context"
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
			return context.WithValue(ctx, connKey{}, &pageConn{nc: c})
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

// pageConn is what the connection page shows of a connection that does
// not change while it lives, worked out at its first request: net/http
// serves one request at a time on a connection, so it needs no lock.
type pageConn struct {
	nc      net.Conn
	c       *stack.Conn // nil until the first request, or off ustack
	local   string
	remote  string
	id      string // the X-Ustack-Connection header up to the state
	tlsInfo string
}

func (p *pageConn) init() bool {
	if p.c != nil {
		return true
	}
	nc := p.nc
	if tc, ok := nc.(*tlslite.Conn); ok {
		cs := tc.ConnectionState()
		p.tlsInfo = "TLS 1.2, " + tlslite.CipherSuiteName(cs.CipherSuite) +
			", extended master secret " + strconv.FormatBool(cs.ExtendedMasterSecret) +
			", resumed " + strconv.FormatBool(cs.DidResume)
		nc = tc.NetConn()
	}
	c, ok := nc.(*stack.Conn)
	if !ok {
		return false
	}
	p.c, p.local, p.remote = c, c.LocalAddr().String(), c.RemoteAddr().String()
	p.id = c.ID().String() + " state="
	return true
}

// connPage writes the visitor's connection as ustack sees it. It is built
// by hand, not with html/template: the template's reflection cost three
// times the rest of a keep-alive request (15k against 48k requests/s with
// wrk on one core), and this page is what `ustack serve --http` answers.
// What does not change on a connection is formatted once (pageConn): the
// addresses, the connection's name and its TLS session were 4% of serve's
// CPU over keep-alive HTTPS when formatted on every request.
func connPage(w http.ResponseWriter, r *http.Request) {
	pc, _ := r.Context().Value(connKey{}).(*pageConn)
	if pc == nil || !pc.init() {
		http.Error(w, "not a ustack connection", http.StatusInternalServerError)
		return
	}
	bp := pageBufs.Get().(*[]byte)
	in := pc.c.Info()
	b := appendConnPage((*bp)[:0], pc.local, pc.remote, in, pc.tlsInfo)
	h := w.Header()
	h["Content-Type"] = htmlType
	h["X-Ustack-Connection"] = []string{pc.id + in.State.String()}
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.Write(b)
	*bp = b
	pageBufs.Put(bp)
}

// htmlType is shared by every response: net/http only reads it.
var htmlType = []string{"text/html; charset=utf-8"}

var pageBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

const pageHead = `<!doctype html>
<html><head><title>ustack: your connection</title></head>
<body>
<h1>Hello from ustack</h1>
<p>This page was served over a TCP stack written in Go, running in user space behind a TUN device.
Here is your connection as ustack sees it right now.</p>
<table>
`

// pageRow appends the rows of the connection page; every value is
// HTML-escaped, numbers are appended in place.
type pageRow []byte

func (p pageRow) th(name string) pageRow {
	return append(append(append(p, "<tr><th>"...), name...), "</th><td>"...)
}
func (p pageRow) end() pageRow       { return append(p, "</td></tr>\n"...) }
func (p pageRow) u(v uint64) pageRow { return strconv.AppendUint(p, v, 10) }
func (p pageRow) i(v int) pageRow    { return strconv.AppendInt(p, int64(v), 10) }

// s appends v HTML-escaped, as html.EscapeString would.
func (p pageRow) s(v string) pageRow {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '<':
			p = append(p, "&lt;"...)
		case '>':
			p = append(p, "&gt;"...)
		case '&':
			p = append(p, "&amp;"...)
		case '\'':
			p = append(p, "&#39;"...)
		case '"':
			p = append(p, "&#34;"...)
		default:
			p = append(p, c)
		}
	}
	return p
}

// appendConnPage appends the page for a connection to b.
func appendConnPage(b []byte, local, remote string, in tcp.Info, tlsInfo string) []byte {
	p := pageRow(append(b, pageHead...))
	p = p.th("you").s(remote).end()
	p = p.th("ustack").s(local).end()
	p = p.th("state").s(in.State.String()).end()
	p = p.th("smoothed RTT").s(in.SRTT.String()).s(" (variance ").s(in.RTTVar.String()).s(", RTO ").s(in.RTO.String()).s(")").end()
	p = p.th("congestion window").i(in.Cwnd).s(" bytes (").s(in.CC).s(", ssthresh ").i(in.Ssthresh).s(")").end()
	p = p.th("send MSS").i(in.SndMSS).end()
	p = p.th("windows").s("send ").u(uint64(in.SndWnd)).s(", receive ").u(uint64(in.RcvWnd)).end()
	p = p.th("segments").s("in ").u(in.Stats.SegsIn).s(", out ").u(in.Stats.SegsOut).end()
	p = p.th("retransmissions").u(in.Stats.Retransmits).end()
	p = p.th("ISS / IRS").u(uint64(in.ISS)).s(" / ").u(uint64(in.IRS)).end()
	p = p.th("options").s("window scale ").s(in.WindowScale[0].String()).s("/").s(in.WindowScale[1].String()).
		s(", timestamps ").s(strconv.FormatBool(in.Timestamps)).s(", SACK ").s(strconv.FormatBool(in.SACK)).end()
	if tlsInfo != "" {
		p = p.th("TLS").s(tlsInfo).end()
	}
	return append(p, "</table>\n</body></html>\n"...)
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
