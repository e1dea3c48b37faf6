package bench

import "testing"

func res(stack, metric string, v float64) benchResult {
	return benchResult{Stack: stack, Metric: metric, Value: &v}
}

// TestTargetsAgainstTheKernel: a kernel-relative target is the ratio of the
// two medians, met on the right side of its factor for the metric's
// direction; the memory target bounds ustack's own figure.
func TestTargetsAgainstTheKernel(t *testing.T) {
	rs := []benchResult{
		res(stackKernel, "upload_gbps", 20), res(stackUstack, "upload_gbps", 11),
		res(stackKernel, "echo_rtt_p50_us", 20), res(stackUstack, "echo_rtt_p50_us", 27),
		res(stackUstack, "bytes_per_idle_conn", 1600),
	}
	cases := []struct {
		metric, other string
		ratio         float64
		met           bool
	}{
		{"upload_gbps", stackKernel, 0.55, false},     // 11/20 < 0.6
		{"echo_rtt_p50_us", stackKernel, 1.35, false}, // lower is better: 1.35 > 1.3
		{"bytes_per_idle_conn", targetBytes, 1600, false},
	}
	for _, c := range cases {
		var tg *benchTarget
		for i := range benchTargets {
			if benchTargets[i].metric == c.metric && benchTargets[i].other == c.other {
				tg = &benchTargets[i]
			}
		}
		if tg == nil {
			t.Fatalf("no target for %s against %s", c.metric, c.other)
		}
		r, met, ok := tg.check(rs)
		if !ok || met != c.met || r < c.ratio-1e-9 || r > c.ratio+1e-9 {
			t.Errorf("%s: ratio %v met %v ok %v, want %v %v", tg.desc, r, met, ok, c.ratio, c.met)
		}
	}
	rs[1] = res(stackUstack, "upload_gbps", 13)
	rs[4] = res(stackUstack, "bytes_per_idle_conn", 1400)
	for _, tg := range benchTargets {
		if tg.metric == "upload_gbps" && tg.other == stackKernel || tg.other == targetBytes {
			if _, met, _ := tg.check(rs); !met {
				t.Errorf("%s: not met with upload 0.65x and 1400 bytes", tg.desc)
			}
		}
	}
}
