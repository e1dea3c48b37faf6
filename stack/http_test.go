package stack

// net/http, unchanged, on ustack: the server listens on ustack Listeners and
// is reached by http.Clients whose transports dial through another ustack
// stack or through gVisor's netstack.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"ustack/internal/gvpeer"
	"ustack/internal/waitfor"
	"ustack/stack/link"
)

// The gVisor client and its ustack server sit on a second Pipe, with their
// own addresses so that the server can tell its clients apart.
var (
	httpAddrGVClient = netip.MustParseAddr("198.18.0.5")
	httpAddrGVServer = netip.MustParseAddr("198.18.0.6")
)

const httpPort = 80

// httpEnv is one http.Server on two ustack listeners: one faces a ustack
// client stack (addrA → addrB), the other a gVisor host (httpAddrGVClient →
// httpAddrGVServer).
type httpEnv struct {
	srv     *http.Server
	clients map[string]*http.Client
	servers map[string]netip.Addr // server address per client kind

	mu       sync.Mutex
	newConns map[string]int // server connections accepted, by client address
	closed   map[string]int // server connections closed, by client address
}

func httpSetup(t *testing.T) *httpEnv {
	t.Helper()
	env := &httpEnv{
		clients:  make(map[string]*http.Client),
		servers:  map[string]netip.Addr{"ustack": addrB, "gvisor": httpAddrGVServer},
		newConns: make(map[string]int),
		closed:   make(map[string]int),
	}
	env.srv = &http.Server{Handler: httpHandler(), ConnState: env.connState, ReadHeaderTimeout: 10 * time.Second}

	// ustack client ↔ ustack server.
	uc, us := pair(t, Options{}, Options{})
	// gVisor client ↔ ustack server.
	eg, es := link.Pipe(1500)
	gs, err := New(es, strict(Options{Addr: httpAddrGVServer}))
	if err != nil {
		t.Fatal(err)
	}
	gv, err := gvpeer.New(eg, httpAddrGVClient, gvpeer.Options{SACK: true})
	if err != nil {
		gs.Close()
		t.Fatal(err)
	}

	var serving sync.WaitGroup
	for _, s := range []*Stack{us, gs} {
		l, err := s.ListenTCP(httpPort)
		if err != nil {
			t.Fatal(err)
		}
		serving.Add(1)
		go func() {
			defer serving.Done()
			if err := env.srv.Serve(l); err != http.ErrServerClosed {
				t.Errorf("Serve: %v", err)
			}
		}()
	}
	t.Cleanup(func() {
		env.srv.Close()
		serving.Wait()
		for _, c := range env.clients {
			c.CloseIdleConnections()
		}
		gv.Close()
		gs.Close()
	})

	dial := map[string]func(ctx context.Context, ap netip.AddrPort) (net.Conn, error){
		"ustack": func(ctx context.Context, ap netip.AddrPort) (net.Conn, error) { return uc.DialTCP(ctx, ap) },
		"gvisor": func(ctx context.Context, ap netip.AddrPort) (net.Conn, error) { return gv.Dial(ctx, ap) },
	}
	for kind, d := range dial {
		env.clients[kind] = &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					ap, err := netip.ParseAddrPort(addr)
					if err != nil {
						return nil, err
					}
					return d(ctx, ap)
				},
				MaxIdleConnsPerHost: 4,
				IdleConnTimeout:     time.Minute,
				DisableCompression:  true,
			},
		}
	}
	return env
}

func (env *httpEnv) connState(c net.Conn, st http.ConnState) {
	peer := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().String()
	env.mu.Lock()
	defer env.mu.Unlock()
	switch st {
	case http.StateNew:
		env.newConns[peer]++
	case http.StateClosed, http.StateHijacked:
		env.closed[peer]++
	}
}

func (env *httpEnv) counts(peer netip.Addr) (accepted, closed int) {
	env.mu.Lock()
	defer env.mu.Unlock()
	return env.newConns[peer.String()], env.closed[peer.String()]
}

func (env *httpEnv) url(kind, path string) string {
	return fmt.Sprintf("http://%v:%d%s", env.servers[kind], httpPort, path)
}

// clientAddr is the address a client kind dials from.
func httpClientAddr(kind string) netip.Addr {
	if kind == "gvisor" {
		return httpAddrGVClient
	}
	return addrA
}

// httpHandler serves
//
//	/status/{code}           an empty response with that status
//	/blob?n=N&seed=S         N bytes of newStream(S, N)
//	/upload (POST)           the body's length and SHA-256, as text
//	/close                   a response with "Connection: close"
func httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.PathValue("code"))
		if err != nil || code < 200 || code > 599 {
			http.Error(w, "bad code", http.StatusBadRequest)
			return
		}
		w.WriteHeader(code)
	})
	mux.HandleFunc("GET /blob", func(w http.ResponseWriter, r *http.Request) {
		n, err1 := strconv.ParseInt(r.FormValue("n"), 10, 64)
		seed, err2 := strconv.ParseUint(r.FormValue("seed"), 10, 8)
		if err1 != nil || err2 != nil || n < 0 {
			http.Error(w, "bad n or seed", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		w.Header().Set("Content-Type", "application/octet-stream")
		io.Copy(w, newStream(byte(seed), n))
	})
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		s, n, err := sum(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %x", n, s)
	})
	mux.HandleFunc("GET /close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	})
	return mux
}

// httpGet does a GET and reports whether the connection was reused and
// which local address it had.
func httpGet(t *testing.T, c *http.Client, url string, close bool) (resp *http.Response, body []byte, reused bool, local net.Addr) {
	t.Helper()
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		reused, local = info.Reused, info.Conn.LocalAddr()
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Close = close
	resp, err = c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", url, err)
	}
	return resp, body, reused, local
}

// TestHTTPServerOnUstack: status codes, a few MiB each way with SHA-256,
// keep-alive reuse and Connection: close, for a ustack client and a gVisor
// client.
func TestHTTPServerOnUstack(t *testing.T) {
	env := httpSetup(t)
	for _, kind := range []string{"ustack", "gvisor"} {
		t.Run(kind, func(t *testing.T) {
			c := env.clients[kind]
			peer := httpClientAddr(kind)

			t.Run("status", func(t *testing.T) {
				for _, code := range []int{200, 204, 404, 418, 503} {
					resp, _, _, _ := httpGet(t, c, env.url(kind, fmt.Sprintf("/status/%d", code)), false)
					if resp.StatusCode != code {
						t.Errorf("status %d, want %d", resp.StatusCode, code)
					}
				}
				resp, _, _, _ := httpGet(t, c, env.url(kind, "/nope"), false)
				if resp.StatusCode != http.StatusNotFound {
					t.Errorf("unknown path: status %d", resp.StatusCode)
				}
			})

			t.Run("download", func(t *testing.T) {
				const n = 4 << 20
				resp, body, _, _ := httpGet(t, c, env.url(kind, fmt.Sprintf("/blob?n=%d&seed=7", n)), false)
				if resp.StatusCode != 200 || resp.ContentLength != n {
					t.Fatalf("status %d, length %d", resp.StatusCode, resp.ContentLength)
				}
				want, _, _ := sum(newStream(7, n))
				if got := sha256.Sum256(body); len(body) != n || got != want {
					t.Fatalf("body: %d bytes, SHA-256 equal %v", len(body), got == want)
				}
			})

			t.Run("upload", func(t *testing.T) {
				const n = 3 << 20
				want, _, _ := sum(newStream(9, n))
				resp, err := c.Post(env.url(kind, "/upload"), "application/octet-stream", io.LimitReader(newStream(9, n), n))
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				got, err := io.ReadAll(resp.Body)
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("status %d, err %v", resp.StatusCode, err)
				}
				if exp := fmt.Sprintf("%d %s", n, hex.EncodeToString(want[:])); string(got) != exp {
					t.Fatalf("server saw %q, want %q", got, exp)
				}
			})

			t.Run("keep-alive", func(t *testing.T) {
				c.CloseIdleConnections()
				before, _ := env.counts(peer)
				var first net.Addr
				for i := range 5 {
					resp, body, reused, local := httpGet(t, c, env.url(kind, "/blob?n=100000&seed=1"), false)
					if resp.StatusCode != 200 || len(body) != 100000 {
						t.Fatalf("request %d: status %d, %d bytes", i, resp.StatusCode, len(body))
					}
					if i == 0 {
						first = local
						if reused {
							t.Fatal("first request after CloseIdleConnections reused a connection")
						}
						continue
					}
					if !reused || local.String() != first.String() {
						t.Fatalf("request %d: reused %v from %v, want reuse of %v", i, reused, local, first)
					}
				}
				if after, _ := env.counts(peer); after != before+1 {
					t.Fatalf("server accepted %d connections for 5 requests, want 1", after-before)
				}
			})

			t.Run("connection-close", func(t *testing.T) {
				// Client side: req.Close sends "Connection: close".
				c.CloseIdleConnections()
				waitfor.Cond(t, 5*time.Second, "idle server connections to close", func() bool {
					a, cl := env.counts(peer)
					return a == cl
				})
				accepted, closed := env.counts(peer)
				resp, body, _, _ := httpGet(t, c, env.url(kind, "/status/200"), true)
				if resp.StatusCode != 200 || len(body) != 0 || !resp.Close {
					t.Fatalf("status %d, close %v", resp.StatusCode, resp.Close)
				}
				waitfor.Cond(t, 5*time.Second, "the server to close the connection", func() bool {
					_, cl := env.counts(peer)
					return cl == closed+1
				})
				// Server side: the handler sets "Connection: close".
				resp, body, _, _ = httpGet(t, c, env.url(kind, "/close"), false)
				if resp.StatusCode != 200 || string(body) != "bye" || !resp.Close {
					t.Fatalf("status %d, body %q, close %v", resp.StatusCode, body, resp.Close)
				}
				// Neither connection may be reused.
				_, _, reused, _ := httpGet(t, c, env.url(kind, "/status/204"), false)
				if reused {
					t.Fatal("a connection was reused after Connection: close")
				}
				if a, _ := env.counts(peer); a != accepted+3 {
					t.Fatalf("server accepted %d connections for 3 requests, want 3", a-accepted)
				}
			})
		})
	}
}
