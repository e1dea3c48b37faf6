package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"ustack/stack/link"
	"ustack/tun"
)

// The loss runs: goodput through a path that loses packets in each
// direction, and the sending side's loss-recovery counters during the run,
// per MB of goodput, so that the stacks' reactions to the same loss can be
// compared (lossRows says which counters correspond).

// lossSender says whose counters a loss run records.
type lossSender int

const (
	senderServer lossSender = iota // download: the stack under test sends
	senderClient                   // upload: the kernel client sends to the stack under test
)

// counterKind names the family a counter set belongs to (its names).
type counterKind string

const (
	kindKernel counterKind = "kernel" // /proc/net/netstat TcpExt and /proc/net/snmp Tcp
	kindUstack counterKind = "ustack" // stack.TCPTotals (tcp.Stats)
	kindGVisor counterKind = "gvisor" // gVisor's tcpip.TCPStats (gvpeer.Stats)
)

// lossSample is one run's sender counters, per MB (10^6 bytes) of goodput.
type lossSample struct {
	kind  counterKind
	perMB map[string]float64
}

// lossRow is one line of the loss-counter tables: the counter of each
// family that counts the same thing, or "" where a family has none.
type lossRow struct {
	label                  string
	kernel, ustack, gvisor string
}

// lossRows: the counters recorded and which correspond. Linux counts
// recoveries (TCPSackRecovery) where ustack's FastRetransmits also counts
// recoveries entered, and RetransSegs, ustack's Retransmits and gVisor's
// Retransmits all count retransmitted segments whatever the cause.
var lossRows = []lossRow{
	{"RTO expiries", "TCPTimeouts", "Timeouts", "Timeouts"},
	{"tail loss probes sent", "TCPLossProbes", "TLPProbes", ""},
	{"losses repaired by a tail loss probe", "TCPLossProbeRecovery", "", "TLPRecovery"},
	{"loss recoveries entered (SACK or duplicate ACKs)", "TCPSackRecovery", "FastRetransmits", "SACKRecovery"},
	{"fast retransmits (segments)", "TCPFastRetrans", "", "FastRetransmit"},
	{"retransmits in slow start after an RTO (segments)", "TCPSlowStartRetrans", "", ""},
	{"segments marked lost by RACK", "", "RACKLost", ""},
	{"retransmits lost again", "TCPLostRetransmit", "", ""},
	{"spurious RTOs, recoveries undone", "TCPSpuriousRTOs", "", "SpuriousRecovery"},
	{"D-SACKs received", "TCPDSACKRecv", "DSACKsReceived", ""},
	{"D-SACKs sent for old data", "TCPDSACKOldSent", "", ""},
	{"reordering detected through SACK", "TCPSACKReorder", "", ""},
	{"duplicate ACKs received", "", "DupAcks", ""},
	{"segments retransmitted", "RetransSegs", "Retransmits", "Retransmits"},
	{"segments sent", "OutSegs", "SegsOut", "SegmentsSent"},
}

func (r lossRow) name(k counterKind) string {
	switch k {
	case kindKernel:
		return r.kernel
	case kindUstack:
		return r.ustack
	}
	return r.gvisor
}

// lossMetricSender is whose counters each loss metric records.
var lossMetricSender = map[string]lossSender{
	"goodput_loss1_gbps":    senderServer,
	"goodput_loss5_gbps":    senderServer,
	"goodput_up_loss1_gbps": senderClient,
	"goodput_up_loss5_gbps": senderClient,
}

func (b *bench) measureLoss1(ctx context.Context, stack string, round int) (map[string]float64, error) {
	return b.measureLoss(ctx, stack, round, 0.01, "goodput_loss1_gbps")
}

func (b *bench) measureLoss5(ctx context.Context, stack string, round int) (map[string]float64, error) {
	return b.measureLoss(ctx, stack, round, 0.05, "goodput_loss5_gbps")
}

func (b *bench) measureLossUp1(ctx context.Context, stack string, round int) (map[string]float64, error) {
	return b.measureLoss(ctx, stack, round, 0.01, "goodput_up_loss1_gbps")
}

func (b *bench) measureLossUp5(ctx context.Context, stack string, round int) (map[string]float64, error) {
	return b.measureLoss(ctx, stack, round, 0.05, "goodput_up_loss5_gbps")
}

// measureLoss moves data for the run's duration through a path that loses
// the given fraction of packets in each direction: a download from the
// source service (the stack under test sends) or, for the goodput_up
// metrics, an upload to the discard service (the kernel client sends, the
// stack under test receives). The seed depends on the round only: every
// stack faces the same loss stream. The sender's counters are read before
// and after.
func (b *bench) measureLoss(ctx context.Context, stack string, round int, loss float64, metric string) (map[string]float64, error) {
	env, err := b.env(stack, loss, int64(round+1)*1000+int64(loss*1000))
	if err != nil {
		return nil, err
	}
	defer env.Close()
	sender := lossMetricSender[metric]
	before, kind, err := env.senderCounters(sender)
	if err != nil {
		return nil, err
	}
	mode, port := "download", benchPortSource
	if sender == senderClient {
		mode, port = "upload", benchPortDiscard
	}
	r, err := env.runClient(ctx, mode, "--addr", env.serverAddr(port), "--duration", b.p.Duration.String())
	if err != nil {
		return nil, err
	}
	after, _, err := env.senderCounters(sender)
	if err != nil {
		return nil, err
	}
	st := env.imp.Stats()
	frac := func(d link.DirStats) float64 {
		return float64(d.DroppedLoss+d.DroppedQueue) / float64(max(d.Offered, 1))
	}
	b.note("observed loss: to the client %.2f%% of %d packets, from it %.2f%% of %d (queue drops %d/%d); %.3f packets to the client per packet from it",
		100*frac(st.Out), st.Out.Offered, 100*frac(st.In), st.In.Offered, st.Out.DroppedQueue, st.In.DroppedQueue,
		float64(st.Out.Offered)/float64(max(st.In.Offered, 1)))
	if si := r.Sender; si != nil {
		b.note("kernel sender at the end: srtt %d µs (var %d), cwnd %d segments, ssthresh %d, reordering %d, window offered %d bytes, limited by it %.0f%% of the busy time, %d retransmits",
			si.RTTMicros, si.RTTVarMicros, si.Cwnd, si.Ssthresh, si.Reordering, si.PeerWindow,
			100*float64(si.RwndLimitedUsec)/float64(max(si.BusyMicros, 1)), si.TotalRetrans)
	}
	mb := float64(r.Bytes) / 1e6
	perMB := map[string]float64{}
	var parts []string
	for name, v := range after {
		d := v - before[name]
		perMB[name] = float64(d) / max(mb, 1e-9)
		parts = append(parts, fmt.Sprintf("%s %d", name, d))
	}
	slices.Sort(parts)
	b.note("%s's counters as sender over %.1f MB: %s", kind, mb, strings.Join(parts, ", "))
	if sender == senderClient && env.ust != nil {
		// The receiving side's own view: what it held out of order, what
		// it could not hold, the duplicates it reported.
		t := env.ust.TCPTotals()
		b.note("ustack as receiver: %d bytes in, %d segments out of order, %d dropped (queue full), %d D-SACKs sent, %d ACKs compressed, %d RTOs of its own",
			t.BytesIn, t.OutOfOrder, t.OOODropped, t.DSACKsSent, t.ACKsCompressed, t.Timeouts)
	}
	k := benchKey{stack, metric}
	b.lossCounts[k] = append(b.lossCounts[k], lossSample{kind: kind, perMB: perMB})
	return map[string]float64{metric: gbps(r.Bytes, r.Seconds)}, nil
}

// senderCounters reads the counters of the sending side.
func (e *benchEnv) senderCounters(s lossSender) (map[string]uint64, counterKind, error) {
	switch {
	case s == senderClient:
		m, err := kernelCounters(e.client)
		return m, kindKernel, err
	case e.server != nil:
		m, err := kernelCounters(e.server)
		return m, kindKernel, err
	case e.ust != nil:
		t := e.ust.TCPTotals()
		return map[string]uint64{
			"Timeouts": t.Timeouts, "TLPProbes": t.TLPProbes, "RACKLost": t.RACKLost,
			"FastRetransmits": t.FastRetransmits, "Retransmits": t.Retransmits,
			"SegsOut": t.SegsOut, "DupAcks": t.DupAcks, "DSACKsReceived": t.DSACKsReceived,
		}, kindUstack, nil
	case e.gv != nil:
		t := e.gv.Stats()
		return map[string]uint64{
			"Timeouts": t.Timeouts, "TLPRecovery": t.TLPRecovery, "SACKRecovery": t.SACKRecovery,
			"FastRetransmit": t.FastRetransmit, "SpuriousRecovery": t.SpuriousRecovery,
			"Retransmits": t.Retransmits, "SegmentsSent": t.SegmentsSent,
		}, kindGVisor, nil
	}
	return nil, "", fmt.Errorf("bench: no sender in the %s environment", e.stack)
}

// kernelCounters reads the kernel's counters of lossRows in ns. It reads
// /proc/thread-self/net: /proc/net is /proc/self/net, the namespace of the
// process's main thread, not of the thread Do runs in.
func kernelCounters(ns *tun.Namespace) (map[string]uint64, error) {
	want := map[string]bool{}
	for _, r := range lossRows {
		if r.kernel != "" {
			want[r.kernel] = true
		}
	}
	out := map[string]uint64{}
	err := ns.Do(func() error {
		for _, f := range []struct{ file, prefix string }{{"netstat", "TcpExt:"}, {"snmp", "Tcp:"}} {
			if err := readMIB("/proc/thread-self/net/"+f.file, f.prefix, want, out); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// readMIB reads the counters named in want from a /proc/net/{netstat,snmp}
// file: pairs of lines, names then values, both starting with prefix.
func readMIB(file, prefix string, want map[string]bool, out map[string]uint64) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var names []string
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		fields := strings.Fields(line)[1:]
		if names == nil {
			names = fields
			continue
		}
		for i, v := range fields {
			if i < len(names) && want[names[i]] {
				n, err := strconv.ParseInt(v, 10, 64) // snmp's MaxConn is -1
				if err != nil {
					return fmt.Errorf("%s: %s %q: %w", file, names[i], v, err)
				}
				out[names[i]] = uint64(n)
			}
		}
		names = nil
	}
	return sc.Err()
}
