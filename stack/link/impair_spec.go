package link

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Spec describes the impairments of one direction of an Impaired endpoint,
// in the spirit of Linux netem. The zero Spec impairs nothing.
type Spec struct {
	// Probabilities in [0, 1], drawn independently for every packet.
	Loss    float64 // the packet is dropped
	Dup     float64 // the packet is sent twice
	Reorder float64 // the packet is held back and released after the next one
	Corrupt float64 // one random bit of one random byte is flipped

	// Delay is added to every packet, plus a uniform random offset in
	// [-Jitter, +Jitter] (the sum is at least 0). Jitter does not reorder:
	// a packet is never released before one offered earlier (use Reorder
	// for that).
	Delay, Jitter time.Duration

	// Rate limits the direction to Rate bits per second (0: unlimited): a
	// packet of n bytes occupies the link for n*8/Rate seconds after the
	// previous one, and only then starts its Delay.
	Rate int64

	// Queue is the most packets the direction holds at once (waiting for
	// the rate limit, delayed or held for reordering); beyond it packets
	// are dropped on arrival and counted. 0 means DefaultImpairQueue.
	Queue int
}

// DefaultImpairQueue is the queue limit of a Spec whose Queue is 0; it is
// netem's default limit.
const DefaultImpairQueue = 1000

// maxSpecDuration bounds Delay and Jitter, to keep the arithmetic far from
// overflow.
const maxSpecDuration = 24 * time.Hour

// specKeys are the keys ParseSpec accepts, in the order String writes them.
var specKeys = []string{"loss", "dup", "reorder", "corrupt", "delay", "jitter", "rate", "queue"}

// ParseSpec parses the --impair syntax: comma-separated key=value pairs.
//
//	loss=0.05,dup=0.01,reorder=2%,corrupt=0.001,delay=5ms,jitter=1ms,rate=10mbit,queue=100
//
// Probabilities (loss, dup, reorder, corrupt) are a fraction in [0, 1] or a
// percentage ("5%"). Delay and jitter are Go durations. Rate is a number of
// bits per second with an optional unit bit, kbit, mbit or gbit (powers of
// 1000, as tc uses them). Queue is a packet count. The empty string and
// "none" mean no impairment.
func ParseSpec(s string) (Spec, error) {
	var sp Spec
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return sp, nil
	}
	seen := make(map[string]bool)
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return Spec{}, fmt.Errorf("link: impair spec %q: empty item (want key=value pairs separated by commas)", s)
		}
		key, val, ok := strings.Cut(item, "=")
		key, val = strings.ToLower(strings.TrimSpace(key)), strings.TrimSpace(val)
		if !ok {
			return Spec{}, fmt.Errorf("link: impair spec: %q has no value (want key=value; valid keys: %s)", item, strings.Join(specKeys, ", "))
		}
		if seen[key] {
			return Spec{}, fmt.Errorf("link: impair spec: key %q given twice", key)
		}
		seen[key] = true
		if err := sp.set(key, val); err != nil {
			return Spec{}, err
		}
	}
	return sp, nil
}

// specField is a field of a Spec and its key in the ParseSpec syntax.
type specField[T any] struct {
	key string
	v   *T
}

// probs are s's probabilities, in the order of specKeys.
func (s *Spec) probs() []specField[float64] {
	return []specField[float64]{{"loss", &s.Loss}, {"dup", &s.Dup}, {"reorder", &s.Reorder}, {"corrupt", &s.Corrupt}}
}

// durations are s's durations, in the order of specKeys.
func (s *Spec) durations() []specField[time.Duration] {
	return []specField[time.Duration]{{"delay", &s.Delay}, {"jitter", &s.Jitter}}
}

// set parses val into the field of key.
func (s *Spec) set(key, val string) error {
	var err error
	for _, f := range s.probs() {
		if f.key == key {
			*f.v, err = parseProb(key, val)
			return err
		}
	}
	for _, f := range s.durations() {
		if f.key == key {
			*f.v, err = parseDur(key, val)
			return err
		}
	}
	switch key {
	case "rate":
		s.Rate, err = parseRate(val)
	case "queue":
		n, perr := strconv.Atoi(val)
		if perr != nil || n < 0 {
			err = fmt.Errorf("link: impair spec: queue=%q: want a number of packets (0 for the default %d)", val, DefaultImpairQueue)
		}
		s.Queue = n
	default:
		err = fmt.Errorf("link: impair spec: unknown key %q (valid keys: %s)", key, strings.Join(specKeys, ", "))
	}
	return err
}

func parseProb(key, val string) (float64, error) {
	num, pct := strings.CutSuffix(val, "%")
	p, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if pct {
		p /= 100
	}
	if err != nil || math.IsNaN(p) || p < 0 || p > 1 {
		return 0, fmt.Errorf("link: impair spec: %s=%q: want a probability from 0 to 1 (such as 0.05) or a percentage (such as 5%%)", key, val)
	}
	return p, nil
}

func parseDur(key, val string) (time.Duration, error) {
	d, err := time.ParseDuration(val)
	if err != nil || d < 0 || d > maxSpecDuration {
		return 0, fmt.Errorf("link: impair spec: %s=%q: want a duration from 0 to %v (such as 5ms)", key, val, maxSpecDuration)
	}
	return d, nil
}

var rateUnits = []struct {
	name string
	mult float64
}{
	{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1},
}

func parseRate(val string) (int64, error) {
	bad := fmt.Errorf("link: impair spec: rate=%q: want bits per second such as 10mbit (units: bit, kbit, mbit, gbit; a plain number is bit/s; 0 is unlimited)", val)
	num, mult := strings.ToLower(val), 1.0
	for _, u := range rateUnits {
		if n, ok := strings.CutSuffix(num, u.name); ok {
			num, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || f < 0 {
		return 0, bad
	}
	r := math.Round(f * mult)
	if r > 1e15 || (r < 1 && f != 0) {
		return 0, bad
	}
	return int64(r), nil
}

// Validate reports whether every field is in range (what ParseSpec accepts).
func (s Spec) Validate() error {
	for _, p := range s.probs() {
		if v := *p.v; math.IsNaN(v) || v < 0 || v > 1 {
			return fmt.Errorf("link: impair spec: %s=%v is not a probability from 0 to 1", p.key, v)
		}
	}
	if s.Delay < 0 || s.Delay > maxSpecDuration || s.Jitter < 0 || s.Jitter > maxSpecDuration {
		return fmt.Errorf("link: impair spec: delay %v and jitter %v must be from 0 to %v", s.Delay, s.Jitter, maxSpecDuration)
	}
	if s.Rate < 0 || s.Queue < 0 {
		return fmt.Errorf("link: impair spec: rate %d and queue %d must not be negative", s.Rate, s.Queue)
	}
	return nil
}

// String renders s in the syntax ParseSpec reads ("none" for the zero
// Spec), so that ParseSpec(s.String()) == s.
func (s Spec) String() string {
	var parts []string
	for _, p := range s.probs() {
		if *p.v != 0 {
			parts = append(parts, p.key+"="+strconv.FormatFloat(*p.v, 'g', -1, 64))
		}
	}
	for _, d := range s.durations() {
		if *d.v != 0 {
			parts = append(parts, d.key+"="+d.v.String())
		}
	}
	if s.Rate != 0 {
		r := strconv.FormatInt(s.Rate, 10) + "bit"
		for _, u := range rateUnits {
			if m := int64(u.mult); s.Rate%m == 0 {
				r = strconv.FormatInt(s.Rate/m, 10) + u.name
				break
			}
		}
		parts = append(parts, "rate="+r)
	}
	if s.Queue != 0 {
		parts = append(parts, "queue="+strconv.Itoa(s.Queue))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}
