package bench

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
)

// The queues rows: `ustack serve --queues 1` against `--queues 2`, the same
// wrk run as serve_http_rps (two threads, 64 keep-alive connections)
// against serve's page, each serve in a namespace of its own, back to
// back in one step (the order alternating by round), so that the ratio
// of the pair is the gain of a second TUN queue and reader. ustack only:
// the kernel and gVisor have no such flag.

// queueMetrics are the figures of the queues rows.
var queueMetrics = []string{"serve_q1_http_rps", "serve_q2_http_rps", "serve_queues_gain", "serve_q2_min_share"}

// ustackOnly reports whether a metric is measured on ustack alone.
func ustackOnly(metric string) bool {
	for _, m := range queueMetrics {
		if m == metric {
			return true
		}
	}
	return false
}

// serveQueuesRE reads serve's "queues:" line: "0 rx 1200 tx 1300, ...".
var serveQueuesRE = regexp.MustCompile(`(\d+) rx (\d+) tx (\d+)`)

// measureServeQueues runs serve with one queue and with two, and yields
// both rates, their ratio, and the smaller queue's share of the packets
// read in the two-queue run (50% is an even split).
func (b *bench) measureServeQueues(ctx context.Context, _ string, round int) (map[string]float64, error) {
	order := []int{1, 2}
	if round%2 == 1 {
		order = []int{2, 1}
	}
	out := map[string]float64{}
	for _, q := range order {
		rps, split, err := b.serveQueuesRun(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("--queues %d: %w", q, err)
		}
		out[fmt.Sprintf("serve_q%d_http_rps", q)] = rps
		if q == 2 {
			if len(split) != 2 || split[0][0]+split[1][0] == 0 {
				return nil, fmt.Errorf("--queues 2: serve reported no split of its packets over two queues")
			}
			rx0, rx1 := float64(split[0][0]), float64(split[1][0])
			out["serve_q2_min_share"] = 100 * min(rx0, rx1) / (rx0 + rx1)
			b.note("--queues 2: queue 0 read %d and wrote %d packets, queue 1 read %d and wrote %d", split[0][0], split[0][1], split[1][0], split[1][1])
		}
	}
	out["serve_queues_gain"] = out["serve_q2_http_rps"] / out["serve_q1_http_rps"]
	return out, nil
}

// serveQueuesRun starts serve with q queues, runs wrk against it, stops it
// and returns the rate and, for q > 1, each queue's packets read and
// written, from the line serve prints when it stops.
func (b *bench) serveQueuesRun(ctx context.Context, q int) (float64, [][2]uint64, error) {
	b.serveArgs, b.queueSplit = []string{"--queues", strconv.Itoa(q)}, nil
	env, err := b.serveEnv(ctx)
	b.serveArgs = nil
	if err != nil {
		return 0, nil, err
	}
	rps, err := b.runWrk(ctx, env, "http://"+env.serverAddr(benchPortHTTP)+"/", 64)
	env.Close() // stops serve, which reports its queues (stopServe)
	if err != nil {
		return 0, nil, err
	}
	return rps, b.queueSplit, nil
}

// parseQueueSplit reads each queue's packets read and written from
// serve's "queues:" line.
func parseQueueSplit(line string) [][2]uint64 {
	var split [][2]uint64
	for _, m := range serveQueuesRE.FindAllStringSubmatch(line, -1) {
		rx, _ := strconv.ParseUint(m[2], 10, 64)
		tx, _ := strconv.ParseUint(m[3], 10, 64)
		split = append(split, [2]uint64{rx, tx})
	}
	return split
}
