package sim

import (
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/golden.txt from this run")

// goldenSeeds are the seeds whose whole runs are pinned per profile.
const goldenSeeds = 24

// TestSimGolden pins the outcome of the first goldenSeeds seeds of every
// profile: the SHA-256 of each run's fingerprint (every transition with its
// cause and virtual time, every stack's segment counters, the end time and
// the error). A change to the TCP that is meant to keep behaviour (a
// refactor) must leave this file unchanged; a change that is meant to alter
// behaviour rewrites it with -update-golden, and the diff shows which runs
// moved.
func TestSimGolden(t *testing.T) {
	var b strings.Builder
	for _, p := range Profiles {
		for seed := uint64(1); seed <= goldenSeeds; seed++ {
			fmt.Fprintf(&b, "%s %d %x\n", p.Name, seed, sha256.Sum256([]byte(Run(seed, p).Fingerprint())))
		}
	}
	path := filepath.Join("testdata", "golden.txt")
	if *updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (create it with go test ./stack/sim -run TestSimGolden -update-golden)", err)
	}
	got, wl := strings.Split(b.String(), "\n"), strings.Split(string(want), "\n")
	if len(got) != len(wl) {
		t.Fatalf("%s has %d lines, this run %d", path, len(wl), len(got))
	}
	for i := range got {
		if got[i] != wl[i] {
			t.Errorf("run changed: got %q, want %q; replay with %s", got[i], wl[i], replay(seedOf(got[i]), strings.Fields(got[i])[0]))
		}
	}
}

func seedOf(line string) uint64 {
	var name string
	var seed uint64
	fmt.Sscanf(line, "%s %d", &name, &seed)
	return seed
}
