package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The bench's kernel-side clients that no stock tool provides run as
// `ustack bench client MODE [flags]`, a separate process started inside the
// client namespace: their CPU and memory stay out of the server process,
// whose memory and CPU profile are measured. Each prints one JSON object
// (benchClientResult) on stdout.

// benchClientResult is what a client mode reports.
type benchClientResult struct {
	Seconds float64     `json:"seconds"`         // measured interval
	Bytes   int64       `json:"bytes,omitempty"` // payload moved in it
	Count   int64       `json:"count,omitempty"` // handshakes, connections, samples
	Errors  int64       `json:"errors,omitempty"`
	Samples []int64     `json:"samples_ns,omitempty"` // echo round trips
	Ready   bool        `json:"ready,omitempty"`      // idle: all connections are up
	Sender  *senderInfo `json:"sender,omitempty"`     // timed upload: the kernel sender's TCP_INFO at the end
}

// senderInfo is the kernel sender's view of a connection (TCP_INFO), for
// reading a loss run: why the sender sent no faster.
type senderInfo struct {
	RTTMicros       uint32 `json:"rtt_us"`
	RTTVarMicros    uint32 `json:"rttvar_us"`
	Cwnd            uint32 `json:"cwnd"` // segments
	Ssthresh        uint32 `json:"ssthresh"`
	Reordering      uint32 `json:"reordering"`
	PeerWindow      uint32 `json:"peer_window"` // bytes the receiver last offered
	TotalRetrans    uint32 `json:"total_retrans"`
	BusyMicros      uint64 `json:"busy_us"`         // time with data in flight
	RwndLimitedUsec uint64 `json:"rwnd_limited_us"` // of which, limited by the receiver's window
}

func tcpSenderInfo(fd int) (*senderInfo, error) {
	ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return nil, err
	}
	return &senderInfo{
		RTTMicros: ti.Rtt, RTTVarMicros: ti.Rttvar, Cwnd: ti.Snd_cwnd, Ssthresh: ti.Snd_ssthresh,
		Reordering: ti.Reordering, PeerWindow: ti.Snd_wnd, TotalRetrans: ti.Total_retrans,
		BusyMicros: ti.Busy_time, RwndLimitedUsec: ti.Rwnd_limited,
	}, nil
}

// ClientConfig are the settings of a client mode (its flags).
type ClientConfig struct {
	Addr     string        // server IP:PORT
	Bytes    int64         // bytes to move (0 with Duration: for that long)
	Duration time.Duration // how long to run
	Count    int           // round trips (echo) or connections (idle)
	Warmup   int           // round trips not measured (echo)
	Conc     int           // concurrent connections (handshakes, idle)
	CPU      int           // echo: run on this CPU only (-1: anywhere)
}

// ClientModes are the modes of `ustack bench client`.
var ClientModes = []string{"upload", "download", "echo", "handshakes", "idle", "udpflood"}

// RunClient runs one client mode until it is done or ctx ends and prints
// its result as one JSON object on stdout (idle: once every connection is
// up, then it holds them until stdin closes).
func RunClient(ctx context.Context, mode string, f ClientConfig, stdout io.Writer) error {
	var r benchClientResult
	var err error
	switch mode {
	case "upload":
		r, err = clientUpload(ctx, f)
	case "download":
		r, err = clientDownload(ctx, f)
	case "echo":
		r, err = clientEcho(ctx, f)
	case "handshakes":
		r, err = clientHandshakes(ctx, f)
	case "idle":
		return clientIdle(ctx, f, stdout)
	case "udpflood":
		r, err = clientUDPFlood(ctx, f)
	default:
		return fmt.Errorf("bench client: unknown mode %q", mode)
	}
	if err != nil {
		return fmt.Errorf("bench client %s: %w", mode, err)
	}
	return json.NewEncoder(stdout).Encode(r)
}

func benchDial(ctx context.Context, addr string) (*net.TCPConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr) // the address says which family
	if err != nil {
		return nil, err
	}
	tc := c.(*net.TCPConn)
	if dl, ok := ctx.Deadline(); ok {
		tc.SetDeadline(dl)
	}
	return tc, nil
}

// clientUpload writes --bytes to the discard service, half-closes, and
// waits for the server's close: every byte has then been read by the
// server's application. With --duration (and no --bytes) it writes for
// that long instead (see uploadFor).
func clientUpload(ctx context.Context, f ClientConfig) (benchClientResult, error) {
	c, err := benchDial(ctx, f.Addr)
	if err != nil {
		return benchClientResult{}, err
	}
	defer c.Close()
	if f.Bytes == 0 {
		return uploadFor(c, f.Duration)
	}
	buf := make([]byte, 256<<10)
	start := time.Now()
	for left := f.Bytes; left > 0; {
		n, err := c.Write(buf[:min(left, int64(len(buf)))])
		if err != nil {
			return benchClientResult{}, err
		}
		left -= int64(n)
	}
	if err := c.CloseWrite(); err != nil {
		return benchClientResult{}, err
	}
	if _, err := io.Copy(io.Discard, c); err != nil {
		return benchClientResult{}, err
	}
	return benchClientResult{Seconds: time.Since(start).Seconds(), Bytes: f.Bytes}, nil
}

// uploadFor writes for d and counts the bytes the server's TCP has
// acknowledged: those written less those still in the send queue
// (SIOCOUTQ). It then resets the connection (SO_LINGER 0), so that no
// queued data drains into the next run.
func uploadFor(c *net.TCPConn, d time.Duration) (benchClientResult, error) {
	buf := make([]byte, 256<<10)
	start := time.Now()
	c.SetWriteDeadline(start.Add(d))
	var written int64
	for {
		n, err := c.Write(buf)
		written += int64(n)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			return benchClientResult{}, fmt.Errorf("after %d bytes: %w", written, err)
		}
	}
	secs := time.Since(start).Seconds()
	rc, err := c.SyscallConn()
	if err != nil {
		return benchClientResult{}, err
	}
	var queued int
	var qerr error
	var info *senderInfo
	if err := rc.Control(func(fd uintptr) {
		queued, qerr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
		info, _ = tcpSenderInfo(int(fd))
	}); err != nil {
		return benchClientResult{}, err
	}
	if qerr != nil {
		return benchClientResult{}, fmt.Errorf("SIOCOUTQ: %w", qerr)
	}
	c.SetLinger(0)
	return benchClientResult{Seconds: secs, Bytes: written - int64(queued), Sender: info}, nil
}

// clientDownload asks the source service for --bytes and reads them to the
// server's close; with --duration (and no --bytes) it reads for that long.
func clientDownload(ctx context.Context, f ClientConfig) (benchClientResult, error) {
	c, err := benchDial(ctx, f.Addr)
	if err != nil {
		return benchClientResult{}, err
	}
	defer c.Close()
	want := f.Bytes
	if want == 0 {
		want = 1 << 62
	}
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(want))
	buf := make([]byte, 256<<10)
	start := time.Now()
	if _, err := c.Write(hdr[:]); err != nil {
		return benchClientResult{}, err
	}
	var got int64
	if f.Bytes == 0 {
		end := start.Add(f.Duration)
		c.SetReadDeadline(end)
		for {
			n, err := c.Read(buf)
			got += int64(n)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return benchClientResult{}, fmt.Errorf("after %d bytes: %w", got, err)
			}
		}
		return benchClientResult{Seconds: time.Since(start).Seconds(), Bytes: got}, nil
	}
	for {
		n, err := c.Read(buf)
		got += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return benchClientResult{}, fmt.Errorf("after %d bytes: %w", got, err)
		}
	}
	if got != f.Bytes {
		return benchClientResult{}, fmt.Errorf("got %d bytes, want %d", got, f.Bytes)
	}
	return benchClientResult{Seconds: time.Since(start).Seconds(), Bytes: got}, nil
}

// clientEcho does --warmup then --count 1-byte round trips on one fresh
// connection to the echo service and reports each measured one. It uses
// blocking system calls (write(2), then read(2) sleeping in the kernel
// until the byte is back), Nagle off, as a C client or `nc` does: Go's
// net.Conn would park the goroutine and let the runtime spin a few
// microseconds before it sleeps in epoll_wait, a busy poll that hides part
// of the server's wake-up latency (docs/benchmarks.md, the method section).
func clientEcho(ctx context.Context, f ClientConfig) (benchClientResult, error) {
	if f.CPU >= 0 {
		// The loop runs on this thread only, pinned (sched_setaffinity
		// of the calling thread).
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(f.CPU)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return benchClientResult{}, fmt.Errorf("--cpu %d: %w", f.CPU, err)
		}
	}
	fd, err := blockingDial(ctx, f.Addr)
	if err != nil {
		return benchClientResult{}, err
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return benchClientResult{}, fmt.Errorf("TCP_NODELAY: %w", err)
	}
	b := []byte{0}
	samples := make([]int64, 0, f.Count)
	start := time.Now()
	for i := 0; i < f.Warmup+f.Count; i++ {
		b[0] = byte(i)
		t0 := time.Now()
		if _, err := retryEINTR(func() (int, error) { return unix.Write(fd, b) }); err != nil {
			return benchClientResult{}, fmt.Errorf("write: %w", err)
		}
		if n, err := retryEINTR(func() (int, error) { return unix.Read(fd, b) }); err != nil || n != 1 {
			return benchClientResult{}, fmt.Errorf("read: %d, %v", n, err)
		}
		if i >= f.Warmup {
			samples = append(samples, int64(time.Since(t0)))
		}
	}
	return benchClientResult{Seconds: time.Since(start).Seconds(), Count: int64(len(samples)), Samples: samples}, nil
}

// retryEINTR repeats a system call that a signal interrupted: the Go
// runtime signals its threads (preemption), and a socket with SO_RCVTIMEO
// or SO_SNDTIMEO is not restarted after a signal (signal(7)).
func retryEINTR(call func() (int, error)) (int, error) {
	for {
		n, err := call()
		if !errors.Is(err, unix.EINTR) {
			return n, err
		}
	}
}

// blockingDial connects a blocking IPv4 TCP socket to addr. Reads and
// writes time out (SO_RCVTIMEO, SO_SNDTIMEO) at ctx's deadline, or after
// 30 s: a lost server fails the run instead of hanging it.
func blockingDial(ctx context.Context, addr string) (int, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return -1, fmt.Errorf("--addr %q: want IPv4:PORT", addr)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	limit := 30 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		limit = max(time.Until(dl), time.Millisecond)
	}
	tv := unix.NsecToTimeval(limit.Nanoseconds())
	for _, opt := range []int{unix.SO_RCVTIMEO, unix.SO_SNDTIMEO} {
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, opt, &tv); err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	sa := &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}
	// After an interrupted connect(2) the handshake goes on: calling again
	// answers EALREADY until it is done, then EISCONN.
	err = unix.Connect(fd, sa)
	for errors.Is(err, unix.EINTR) || errors.Is(err, unix.EALREADY) {
		if err = unix.Connect(fd, sa); errors.Is(err, unix.EISCONN) {
			err = nil
		}
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("connect %v: %w", ap, err)
	}
	return fd, nil
}

// clientHandshakes does full TLS 1.2 handshakes (RSA key exchange,
// AES-128-GCM, no session cache: nothing is resumed) on --conc connections
// at a time for --duration. Each connection: TCP connect, handshake,
// close_notify and close. The certificate is not verified, to keep the
// client's CPU for the server.
func clientHandshakes(ctx context.Context, f ClientConfig) (benchClientResult, error) {
	cfg := &tls.Config{
		InsecureSkipVerify: true,
		MinVersion:         tls.VersionTLS12,
		MaxVersion:         tls.VersionTLS12,
		CipherSuites:       []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256},
	}
	var ok, bad atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	end := start.Add(f.Duration)
	var wg sync.WaitGroup
	for range max(f.Conc, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) && ctx.Err() == nil {
				hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				c, err := benchDial(hctx, f.Addr)
				if err == nil {
					tc := tls.Client(c, cfg)
					err = tc.HandshakeContext(hctx)
					if err == nil && tc.ConnectionState().DidResume {
						err = errors.New("session resumed")
					}
					tc.Close()
				}
				cancel()
				if err != nil {
					bad.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	r := benchClientResult{Seconds: time.Since(start).Seconds(), Count: ok.Load(), Errors: bad.Load()}
	if r.Count == 0 {
		err, _ := firstErr.Load().(error)
		return r, fmt.Errorf("no handshake completed: %v", err)
	}
	return r, nil
}

// clientIdle opens --count connections (--conc at a time), prints a ready
// result, and holds them until stdin closes.
func clientIdle(ctx context.Context, f ClientConfig, stdout io.Writer) error {
	conns := make([]net.Conn, f.Count)
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	for range max(f.Conc, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(f.Count) {
					return
				}
				var d net.Dialer
				c, err := d.DialContext(ctx, "tcp4", f.Addr)
				if err != nil {
					select {
					case errc <- fmt.Errorf("connection %d: %w", i, err):
					default:
					}
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return fmt.Errorf("bench client idle: %w", err)
	default:
	}
	if err := json.NewEncoder(stdout).Encode(benchClientResult{Ready: true, Count: int64(f.Count)}); err != nil {
		return err
	}
	io.Copy(io.Discard, bufio.NewReader(os.Stdin))
	for _, c := range conns {
		c.Close()
	}
	return nil
}

// benchUDPSegment is the UDP payload of each datagram of the flood: a
// 1500-byte IP packet.
const benchUDPSegment = 1500 - 28

// clientUDPFlood sends UDP at full speed for --duration, with UDP GSO
// (64 KiB per send, split into 1500-byte packets by the TUN reader), so
// that the sender is not what limits the rate.
func clientUDPFlood(ctx context.Context, f ClientConfig) (benchClientResult, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp4", f.Addr)
	if err != nil {
		return benchClientResult{}, err
	}
	defer c.Close()
	uc := c.(*net.UDPConn)
	rc, err := uc.SyscallConn()
	if err != nil {
		return benchClientResult{}, err
	}
	var serr error
	rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT, benchUDPSegment)
		if serr == nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
		}
	})
	if serr != nil {
		return benchClientResult{}, fmt.Errorf("UDP_SEGMENT: %w", serr)
	}
	buf := make([]byte, benchUDPSegment*44)
	start := time.Now()
	end := start.Add(f.Duration)
	var sent, errs int64
	for i := 0; ; i++ {
		if i%16 == 0 && time.Now().After(end) {
			break
		}
		n, err := uc.Write(buf)
		if err != nil {
			errs++
			continue
		}
		sent += int64(n)
	}
	return benchClientResult{Seconds: time.Since(start).Seconds(), Bytes: sent, Errors: errs}, nil
}
