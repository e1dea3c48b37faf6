// Package gvpeer runs gVisor's netstack (gvisor.dev/gvisor/pkg/tcpip) as a
// TCP host over IPv4 or IPv6 on a ustack link.Endpoint, so that ustack can be tested and
// measured against an independent, mature TCP in one process, without root.
//
// It is a test and benchmark peer only. docs/design.md allows gVisor's stack and
// transport packages in _test.go files and in `ustack bench`, nowhere else:
// ustack itself must never import this package outside those two places.
// Living under internal/ keeps it out of reach of other modules.
//
// A Host owns one gVisor stack with the ipv4, ipv6 and tcp protocols, one
// NIC, one address (IPv4 or IPv6: its connections are of that family) and
// default routes. Its NIC is a small gVisor LinkEndpoint that
// talks to the link.Endpoint directly: outbound packets are copied into
// headroom-reserving buffers and written with WriteBatch (concurrent writers
// are combined into one batch), and one goroutine reads inbound batches with
// ReadBatch and hands each packet to gVisor.
//
// Connections are gonet conns wrapped in *Conn, which keeps the
// tcpip.Endpoint behind them so that tests can read gVisor's view of the
// TCP state (State). Stats reads gVisor's counters. Pair runs gVisor on both
// ends of a link.Pipe, for gVisor-to-gVisor baselines.
package gvpeer
