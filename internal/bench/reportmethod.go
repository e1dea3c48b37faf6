package bench

// reportMethod writes how each figure is measured.
func (b *bench) reportMethod(p printer) {
	p("## How each figure is measured\n\n")
	p("Every run builds fresh namespaces (unique names, 198.18.0.0/15 and 2001:2::/48 addresses only, deleted afterwards),\n")
	p("starts the servers, measures, and tears everything down. The client side is always the kernel's TCP\n")
	p("in the client namespace, in processes of their own (`wrk`, or `ustack bench client MODE`), so that\n")
	p("the server process holds only the server: its CPU profile and its memory are the server's.\n\n")
	if b.p.Bytes == 0 {
		p("- `upload_gbps`: one connection writes to the discard service for %v; the bytes the server's TCP\n", b.p.Duration)
		p("  acknowledged (those written less the client's send queue, SIOCOUTQ) × 8 / elapsed. Timed, not\n")
		p("  sized: a fixed 2 GiB lasts under a second at these rates and made the figure noisy.\n")
		p("- `download_gbps`: one connection asks the source service for an endless stream and reads it for %v.\n", b.p.Duration)
	} else {
		p("- `upload_gbps`: one connection writes %s to the discard service, half-closes and waits for the\n", byteSize(b.p.Bytes))
		p("  server's close (so every byte was read by the server's application); bytes × 8 / elapsed.\n")
		p("- `download_gbps`: one connection asks the source service for %s and reads them to the server's close.\n", byteSize(b.p.Bytes))
	}
	p("- `http_rps`: `wrk -t 2 -c 64 -d %v` against `GET /` (a %d-byte page from `net/http`).\n", b.p.Duration, len(benchPage))
	p("- `http_conn_per_s`: the same with `-c 32 -H 'Connection: close'`: one request per connection, the\n")
	p("  server closes first (and holds TIME-WAIT). The client namespace's ephemeral port range is 1024-65535.\n")
	p("- `https_handshakes_per_s`: 8 concurrent Go crypto/tls clients for %v, each connection a full\n", b.p.Duration)
	p("  TLS 1.2 handshake with `TLS_RSA_WITH_AES_128_GCM_SHA256` (RSA-2048 key exchange), no session\n")
	p("  cache (a resumed session fails the run), then close. The server is tlslite on ustack and\n")
	p("  crypto/tls (that suite only, TLS 1.2) on the kernel and gVisor; both serve `net/http`.\n")
	p("- `https_rps`: `wrk -t 2 -c 64` over HTTPS (OpenSSL negotiates the same suite), keep-alive.\n")
	p("- `upload_ipv6_gbps`, `download_ipv6_gbps`, `http_ipv6_rps`: the same runs as `upload_gbps`,\n")
	p("  `download_gbps` and `http_rps`, each right after its IPv4 run in every round, over IPv6: the client\n")
	p("  at 2001:2::1, the server at 2001:2::2 (/64). The kernel's veth ends and the TUN's kernel side get\n")
	p("  that address and nothing else (no link-local address, no DAD, no router solicitations); ustack\n")
	p("  has both addresses, gVisor's host only the IPv6 one. \"IPv6 against IPv4\" gives the ratios.\n")
	b.reportMethodServe(p)
	b.reportMethodQueues(p)
	b.reportMethodEcho(p)
	b.reportMethodIdle(p)
	b.reportMethodLoss(p)
	p("- `tun_limit_gbps`: the ceiling of the TUN path. A client floods UDP with GSO (64 KiB sends of\n")
	p("  1500-byte packets; the TUN's USO hands them over whole, wireguard-go splits them) while this\n")
	p("  process only reads and drops, through `tun.Device.ReadBatch` as ustack does; IP bytes read per second.\n")
	p("  It is a property of the path, not of a stack: measured once per round and listed under every stack.\n")
	p("  A TCP transfer's goodput is at most 1448/1500 (96.5%%) of it: IP and TCP headers with timestamps.\n\n")
	b.reportEchoFinding(p)
}

func (b *bench) reportMethodServe(p printer) {
	p("- `serve_http_rps`, `serve_conn_per_s`, `serve_https_rps`: `ustack serve` itself, the command a user\n")
	p("  runs, started as a subprocess in the client namespace (`ustack serve --tun bench0 --addr 198.18.0.2\n")
	p("  --host-addr 198.18.0.1/30 --addr6 2001:2::2 --host-addr6 2001:2::1/64 --http 80 --https 443\n")
	p("  --tls-dir DIR --kex rsa --backlog 4096`; it creates its TUN there), once its `ready:` line is out\n")
	p("  and a Go TLS client trusting only the CA it wrote in\n")
	p("  DIR has fetched its page, then stopped with SIGTERM to its PID. The same wrk runs as `http_rps`,\n")
	p("  `http_conn_per_s` and `https_rps`, against `GET /`, serve's connection page (about 1.2 KB of HTML\n")
	p("  built per request from the connection's state, against the bench page's %d bytes). The kernel and\n", len(benchPage))
	p("  gVisor have no `ustack serve`: their columns are the same wrk runs against their bench server (the\n")
	p("  bench page, `net/http`, crypto/tls), so these ratios read \"ustack serve against the kernel's (or\n")
	p("  gVisor's) Go server\".\n")
	p("- `serve_http_ipv6_rps`: `serve_http_rps` over IPv6, to serve's 2001:2::2, right after the IPv4 serve\n")
	p("  rows in every round (a serve of its own); kernel and gVisor: `http_ipv6_rps`'s run.\n")
}

func (b *bench) reportMethodQueues(p printer) {
	p("- `serve_q1_http_rps`, `serve_q2_http_rps`, `serve_queues_gain`, `serve_q2_min_share` (ustack only):\n")
	p("  `ustack serve` started as for the serve rows with `--queues 1`, then with `--queues 2` (a\n")
	p("  multi-queue TUN, one reader goroutine per queue), each under the `http_rps` wrk run (`-t 2 -c 64`,\n")
	p("  keep-alive, %v) against its page, back to back in one step, the order alternating by round.\n", b.p.Duration)
	p("  The gain is the median of each round's q2/q1 ratio (the median of both rates is listed\n")
	p("  too); the share is the less used queue's part of the packets read in the two-queue run, from the\n")
	p("  `queues:` line serve prints when it stops (the step's notes give both queues' counts). wrk's two\n")
	p("  threads and the kernel's TCP run on the same machine, so on 2 CPUs the second reader competes with\n")
	p("  them for the second CPU.\n")
}

func (b *bench) reportMethodEcho(p printer) {
	p("- `echo_rtt_p50_us`, `echo_rtt_p99_us`: one fresh connection, %d warm-up then %d 1-byte round trips\n", b.p.EchoCount/10, b.p.EchoCount)
	p("  to the echo service, Nagle off on both ends, timed by the client. The client makes blocking system\n")
	p("  calls, write(2) then read(2) asleep in the kernel until the byte is back, as a C program or `nc`\n")
	p("  does; percentiles of each run, then the median of runs. Neither end is pinned: the figure is what\n")
	p("  a user sees, scheduler included. The step's notes give the server process's context switches and\n")
	p("  CPU time per round trip (for the kernel, only its Go server's: its TCP work is the kernel's).\n")
	p("- `echo_rtt_p50_same_cpu_us`, `echo_rtt_p50_cross_cpu_us`: the same with every thread of the server\n")
	p("  process (the bench process: ustack, gVisor, or the kernel's Go server) pinned to the first CPU it\n")
	p("  may use, with GOMAXPROCS 1 as `taskset` at start would give it, and the client's thread to the same\n")
	p("  CPU or the next one. They separate the stack's cost from where the scheduler puts the two ends.\n")
}

func (b *bench) reportMethodIdle(p printer) {
	p("- `bytes_per_idle_conn`: a client process opens %d connections to a service that accepts and keeps\n", b.p.Conns)
	p("  them (no goroutine per connection). ustack and gVisor: growth of the bench process's Go heap in use\n")
	p("  plus goroutine stacks (`runtime.MemStats` HeapInuse + StackInuse, after GC) per connection. The\n")
	p("  kernel: the same for its Go server, plus the growth of the kernel's slab (`/proc/meminfo` Slab:\n")
	p("  socket, inode, file, dentry, epoll entry) less the client side's share of that growth, which the\n")
	if b.clientSlabPerConn != 0 {
		p("  ustack and gVisor runs measure (there all slab growth is the client's: %.0f bytes per connection\n", b.clientSlabPerConn)
		p("  in this run, the median of those runs). Slab is machine-wide, so the kernel's figure is the noisiest.\n")
	} else {
		p("  ustack and gVisor runs measure (there all slab growth is the client's). Slab is machine-wide, so\n")
		p("  the kernel's figure is the noisiest.\n")
	}
}

func (b *bench) reportMethodLoss(p printer) {
	p("- `goodput_loss1_gbps`, `goodput_loss5_gbps`: the download, for %v, through a path on which\n", b.p.Duration)
	p("  `link.Impair` (the same code for all three) drops 1%% or 5%% of the packets in each direction, seeded\n")
	p("  per round. It sits on the client's TUN: ustack and gVisor run on `Impair(TUN)`; the kernel, which has\n")
	p("  no link of ours, is reached through a relay that copies batches between `Impair(TUN)` in the client\n")
	p("  namespace and a second TUN in the server namespace (so the kernel's path has one more TUN hop).\n")
	p("- `goodput_up_loss1_gbps`, `goodput_up_loss5_gbps`: the same path the other way: the kernel client\n")
	p("  writes to the discard service for %v, so the stack under test receives (for the kernel column\n", b.p.Duration)
	p("  both ends are kernels). Goodput is the bytes written less those still queued unacknowledged at the\n")
	p("  end (SIOCOUTQ), over the time; the connection is then reset so that nothing drains into the next run.\n")
	p("  Both loss figures come with the sender's counters: see \"Loss recovery: the sender's counters\".\n")
}

// reportEchoFinding explains the echo figures against an independent
// measurement (the difference once reported between a separate harness and
// this bench).
func (b *bench) reportEchoFinding(p printer) {
	p("### Echo round trips: what the figure depends on\n\n")
	p("An independent harness once saw ustack's 1-byte echo median at 54 µs against the kernel's 18 µs (3×)\n")
	p("while this bench's client saw 1.1×. A separate client (blocking write/read pairs, Nagle off, one\n")
	p("fresh connection, 10,000 round trips, against `ustack serve --echo` and a Go echo server in a veth\n")
	p("namespace) found both right, each for its run: the difference lies in where the scheduler puts the\n")
	p("two ends, not in the client's code. On this 2-vCPU virtual machine, with the server confined to CPU 0\n")
	p("(`taskset -c 0`) and the client on CPU 0, the medians were kernel 18.7 µs, ustack 16-18 µs; with the\n")
	p("client on CPU 1, kernel 50-91 µs, ustack 51-79 µs, run for run within 15%% of each other. Waking a\n")
	p("thread on the other, idle vCPU costs tens of microseconds, more than a whole round trip, so 18 µs\n")
	p("against 54 µs is one stack on one vCPU against the other on two. Unpinned, a run mixes both\n")
	p("placements, in proportions that vary with the machine's other load (the kernel's own median ranged\n")
	p("18-53 µs between runs) and with the stack: ustack's server process makes 2.2-2.6 context switches\n")
	p("per round trip against 1.1-1.3 for the kernel's Go server. The TUN reader goroutine wakes the echo\n")
	p("goroutine, and Go's scheduler wakes a second thread that may take it on the other CPU, so the reply\n")
	p("crosses vCPUs more often; confined to one CPU with GOMAXPROCS 1, ustack matches the kernel. That part of ustack's\n")
	p("unpinned median is real, and is what a user sees: in the bench's own runs, unpinned 1.47× the\n")
	p("kernel (20.8 against 30.6 µs), pinned 1.07× on one CPU and 1.17× across two. Go's net.Conn client\n")
	p("(its runtime spins a little before sleeping in epoll_wait) moved single figures by a few µs either\n")
	p("way, not the picture. The bench's echo client is now the blocking one, and the pinned figures show\n")
	p("the stack's own cost next to the unpinned one.\n\n")
}
