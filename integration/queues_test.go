package integration

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// queuesRE reads serve's line on how the packets split over its queues.
var queuesRE = regexp.MustCompile(`(\d+) rx (\d+) tx (\d+)`)

// TestServeQueues: `ustack serve --queues 2` answers wrk's two threads
// (32 keep-alive connections) and curl at once, and both queues of its
// TUN carried packets each way, as serve reports when it stops.
func TestServeQueues(t *testing.T) {
	requireRoot(t)
	requireTool(t, "wrk", "curl")
	ns := newNamespace(t)
	s := startServe(t, ns, "--http", httpPort, "--queues", "2")
	if _, line, err := s.out.wait(0, time.Second, func(l string) bool { return strings.HasPrefix(l, "ready:") }); err != nil || !strings.Contains(line, "2 queues") {
		t.Errorf("ready line %q (%v): want it to say 2 queues", line, err)
	}
	curlDone := make(chan string, 1)
	go func() {
		url := "http://" + stackAddr + "/"
		out, err := runIn(t, ns, 20*time.Second, "curl", "-sS", "--max-time", "10", "-w", "%{http_code}",
			"-o", "/dev/null", url, "-o", "/dev/null", url, "-o", "/dev/null", url)
		if err != nil {
			out += " " + err.Error()
		}
		curlDone <- out
	}()
	out, err := runIn(t, ns, 40*time.Second, "wrk", "-t2", "-c32", "-d3s", "--latency", "http://"+stackAddr+"/")
	if err != nil {
		t.Fatalf("wrk: %v\n%s", err, out)
	}
	r, err := parseWrk(out)
	if err != nil {
		t.Fatalf("reading wrk's report: %v\n%s", err, out)
	}
	if m := wrkSockRE.FindStringSubmatch(r.socketErrors); r.socketErrors != "" && (m == nil || m[1]+m[2]+m[3]+m[4] != "0000") {
		t.Errorf("wrk: %s", r.socketErrors)
	}
	if r.non2xx != "" || r.requests == 0 {
		t.Errorf("wrk: %d requests; %s", r.requests, r.non2xx)
	}
	if got := <-curlDone; got != "200200200" {
		t.Errorf("curl during wrk: %q, want three 200s", got)
	}
	t.Logf("two queues: %.0f requests/s", r.reqPerSec)

	s.stop()
	_, line, err := s.out.wait(0, time.Second, func(l string) bool { return strings.HasPrefix(l, "queues:") })
	if err != nil {
		t.Fatalf("serve printed no queues: line when it stopped: %v", err)
	}
	t.Log(line)
	m := queuesRE.FindAllStringSubmatch(line, -1)
	if len(m) != 2 {
		t.Fatalf("%q: want two queues", line)
	}
	for _, q := range m {
		rx, _ := strconv.Atoi(q[2])
		tx, _ := strconv.Atoi(q[3])
		if rx == 0 || tx == 0 {
			t.Errorf("queue %s: %d packets in, %d out: both queues should carry traffic both ways", q[1], rx, tx)
		}
	}
}
