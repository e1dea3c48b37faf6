package lab

import (
	"encoding/json"
	"strings"
	"testing"

	"ustack/internal/ladder"
	"ustack/stack/tcp"
)

// samplesOf runs a lab with --json and returns its sample events by
// series, in order.
func samplesOf(t *testing.T, name string, v6 bool) map[string][]ladder.Event {
	t.Helper()
	code, out, errs := runLabCmd(t, Options{JSON: true, IPv6: v6}, name)
	if code != 0 {
		t.Fatalf("%s: exit %d, %s", name, code, errs)
	}
	m := map[string][]ladder.Event{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e ladder.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		if e.Kind == ladder.KindSample {
			if e.Sample == nil {
				t.Fatalf("a sample event without its sample: %q", line)
			}
			m[e.Series] = append(m[e.Series], e)
		}
	}
	return m
}

// TestLabCCSamples: the congestion labs emit the sender's congestion
// state for the plots, for every sender, and the values tell the story:
// cwnd starts at the initial window, grows in slow start with no
// ssthresh, falls at the first loss (and to one MSS at a timeout), and
// the time goes forward; over IPv4 and IPv6, whose MSS is 20 bytes less.
func TestLabCCSamples(t *testing.T) {
	want := map[string][]string{
		"slow-start": {"newreno", "cubic"},
		"congestion": {"newreno", "newreno+sack", "cubic", "cubic+sack", "cubic+sack timeout"},
	}
	for _, fam := range labFamilies {
		for lab, series := range want {
			t.Run(lab+"/"+fam.name, func(t *testing.T) {
				t.Parallel()
				mss := tcp.DefaultMSS
				if fam.v6 {
					mss -= 20 // RFC 8200's 40-byte header
				}
				checkSamples(t, lab, series, samplesOf(t, lab, fam.v6), mss)
			})
		}
	}
}

// checkSamples checks a lab's samples of each series.
func checkSamples(t *testing.T, lab string, series []string, m map[string][]ladder.Event, mss int) {
	if len(m) != len(series) {
		t.Errorf("%s: series %v, want %v", lab, keys(m), series)
	}
	for _, name := range series {
		ev := m[name]
		if len(ev) < 100 {
			t.Errorf("%s/%s: %d samples, want one per ACK", lab, name, len(ev))
			continue
		}
		first := ev[0].Sample
		if first.Cwnd != 10*mss || first.Ssthresh != 0 {
			t.Errorf("%s/%s: first sample %+v, want cwnd 10 MSS and no ssthresh", lab, name, *first)
		}
		grew, fell := 0, -1
		for i := 1; i < len(ev); i++ {
			p, q := ev[i-1], ev[i]
			if q.T < p.T {
				t.Fatalf("%s/%s: time goes back at sample %d", lab, name, i)
			}
			if q.Ssthresh == 0 {
				grew = max(grew, q.Cwnd)
			}
			if fell < 0 && q.Cwnd < p.Cwnd {
				fell = i
			}
			if q.InFlight < 0 || q.Cwnd <= 0 {
				t.Fatalf("%s/%s: sample %d %+v", lab, name, i, *q.Sample)
			}
		}
		if grew < 40*mss {
			t.Errorf("%s/%s: cwnd grew only to %d in slow start", lab, name, grew)
		}
		if fell < 0 {
			t.Errorf("%s/%s: cwnd never fell", lab, name)
			continue
		}
		at := ev[fell].Sample
		if at.Ssthresh == 0 || at.Ssthresh >= ev[fell-1].Cwnd {
			t.Errorf("%s/%s: at the fall %+v after cwnd %d: want ssthresh set below it", lab, name, *at, ev[fell-1].Cwnd)
		}
		if strings.Contains(name, "timeout") && at.Cwnd != mss {
			t.Errorf("%s/%s: after the timeout cwnd %d, want 1 MSS", lab, name, at.Cwnd)
		}
	}
}

func keys(m map[string][]ladder.Event) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	return k
}
