package services

import (
	"context"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"ustack/stack"
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

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><title>ustack: your connection</title></head>
<body>
<h1>Hello from ustack</h1>
<p>This page was served over a TCP stack written in Go, running in user space behind a TUN device.
Here is your connection as ustack sees it right now.</p>
<table>
<tr><th>you</th><td>{{.Remote}}</td></tr>
<tr><th>ustack</th><td>{{.Local}}</td></tr>
<tr><th>state</th><td>{{.Info.State}}</td></tr>
<tr><th>smoothed RTT</th><td>{{.Info.SRTT}} (variance {{.Info.RTTVar}}, RTO {{.Info.RTO}})</td></tr>
<tr><th>congestion window</th><td>{{.Info.Cwnd}} bytes ({{.Info.CC}}, ssthresh {{.Info.Ssthresh}})</td></tr>
<tr><th>send MSS</th><td>{{.Info.SndMSS}}</td></tr>
<tr><th>windows</th><td>send {{.Info.SndWnd}}, receive {{.Info.RcvWnd}}</td></tr>
<tr><th>segments</th><td>in {{.Info.Stats.SegsIn}}, out {{.Info.Stats.SegsOut}}</td></tr>
<tr><th>retransmissions</th><td>{{.Info.Stats.Retransmits}}</td></tr>
<tr><th>ISS / IRS</th><td>{{.Info.ISS}} / {{.Info.IRS}}</td></tr>
<tr><th>options</th><td>window scale {{.Info.WindowScale}}, timestamps {{.Info.Timestamps}}, SACK {{.Info.SACK}}</td></tr>
{{if .TLS}}<tr><th>TLS</th><td>{{.TLS}}</td></tr>{{end}}
</table>
</body></html>
`))

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
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Ustack-Connection", fmt.Sprintf("%v state=%v", c.ID(), c.State()))
	pageTmpl.Execute(w, struct {
		Local, Remote net.Addr
		Info          any
		TLS           string
	}{c.LocalAddr(), c.RemoteAddr(), c.Info(), tlsInfo})
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
	var buf [251 * 256]byte
	fillPattern(buf[:])
	for n > 0 {
		k := min(n, int64(len(buf)))
		if _, err := w.Write(buf[:k]); err != nil {
			return
		}
		n -= k
	}
}
