package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// The pinned echo figures separate what a stack costs from where the
// scheduler puts the two ends. On a virtual machine, waking a thread on
// another, idle vCPU costs tens of microseconds, more than the whole
// round trip on one vCPU; an unpinned run is a mix of both placements, in
// proportions that depend on how many threads each stack wakes per round
// trip. Here the server process (this one: the in-process stacks and the
// kernel's Go server) is pinned to the first CPU it may use and the client
// to the same or the next one.

// measureEchoPinned yields echo_rtt_p50_same_cpu_us and
// echo_rtt_p50_cross_cpu_us.
func (b *bench) measureEchoPinned(ctx context.Context, env *benchEnv) (map[string]float64, error) {
	first, second, err := twoCPUs()
	if err != nil {
		return nil, err
	}
	restore, err := pinProcess(first)
	if err != nil {
		return nil, err
	}
	defer restore()
	out := map[string]float64{}
	for _, v := range []struct {
		metric string
		cpu    int
	}{{"echo_rtt_p50_same_cpu_us", first}, {"echo_rtt_p50_cross_cpu_us", second}} {
		r, err := env.runClient(ctx, "echo", "--addr", env.serverAddr(benchPortEcho), "--count", strconv.Itoa(b.p.EchoCount),
			"--warmup", strconv.Itoa(b.p.EchoCount/10), "--cpu", strconv.Itoa(v.cpu))
		if err != nil {
			return nil, err
		}
		if len(r.Samples) == 0 {
			return nil, fmt.Errorf("echo on %s: no samples", env.stack)
		}
		s := slices.Clone(r.Samples)
		slices.Sort(s)
		out[v.metric] = float64(percentile(s, 0.5)) / 1e3
	}
	return out, nil
}

// twoCPUs is the first two CPUs this process may run on.
func twoCPUs() (int, int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return 0, 0, err
	}
	var cpus []int
	for c := 0; c < len(set)*64 && len(cpus) < 2; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) < 2 {
		return 0, 0, errors.New("echo pinned: needs 2 CPUs to run on")
	}
	return cpus[0], cpus[1], nil
}

// pinProcess restricts every thread of this process to cpu, and the Go
// scheduler to one P, as `taskset -c CPU` at start would (the runtime sizes
// GOMAXPROCS from the CPUs it may use); with two Ps on one CPU, the
// runtime's spinning threads would compete with the server for it. It
// returns the function that gives each thread (those created since too)
// the process's former CPU set back, and GOMAXPROCS its former value.
// Threads created meanwhile inherit the pinning from their creator.
func pinProcess(cpu int) (restore func(), err error) {
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return nil, err
	}
	set.Set(cpu)
	if err := setAllThreads(&set); err != nil {
		setAllThreads(&old)
		return nil, fmt.Errorf("pinning to CPU %d: %w", cpu, err)
	}
	procs := runtime.GOMAXPROCS(1)
	return func() {
		runtime.GOMAXPROCS(procs)
		setAllThreads(&old)
	}, nil
}

// setAllThreads sets the CPU set of every thread of this process.
func setAllThreads(set *unix.CPUSet) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	var errs []error
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, set); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
