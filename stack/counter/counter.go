// Package counter is the one style of counters in ustack. Every layer (the
// link decorators, ipv4, the stack's TCP demultiplexer) declares small
// integer enums for what it counts — events, and the reasons it drops
// packets — names each value once in a table behind the enum's String, and
// keeps a Set of atomic uint64 counters indexed by them (a Layer: one Set
// of events and one of drop reasons). Each lists a Set (or anything that
// implements Lister) by name, so that `ustack serve`'s stats page and the
// tests read every layer the same way.
//
// The package imports nothing from ustack, so every layer may use it.
package counter

import (
	"fmt"
	"sync/atomic"
)

// Enum is the type of a layer's counter enum: values 0..n-1, each of which
// names its counter through String.
type Enum interface {
	~uint8
	String() string
}

// Lister is anything that lists named counters.
type Lister interface {
	Each(f func(name string, v uint64))
}

// Set is a fixed table of counters indexed by K, each named by K.String()
// after the Set's prefix. Its methods may be called from any goroutine.
type Set[K Enum] struct {
	prefix string
	v      []atomic.Uint64
}

// NewSet returns the Set of the n counters K(0)..K(n-1), listed as
// prefix+K(k).String(). It panics if a name is not a valid one (see
// Validate): every counter has a name of its own.
func NewSet[K Enum](prefix string, n K) *Set[K] {
	if err := Validate(n); err != nil {
		panic(err)
	}
	return &Set[K]{prefix: prefix, v: make([]atomic.Uint64, n)}
}

// Validate checks that K(0)..K(n-1) have names: non-empty, distinct, and
// made of lower-case letters, digits and '_' only (so the "kind(7)" that
// Name returns for a value missing from its table is refused).
func Validate[K Enum](n K) error {
	seen := make(map[string]K, n)
	for k := K(0); k < n; k++ {
		name := k.String()
		if !validName(name) {
			return fmt.Errorf("counter: %T value %d has no valid name (%q)", k, uint8(k), name)
		}
		if j, ok := seen[name]; ok {
			return fmt.Errorf("counter: %T values %d and %d share the name %q", k, uint8(j), uint8(k), name)
		}
		seen[name] = k
	}
	return nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// Name is the helper behind an enum's String (a counter's, or any other
// small enum's): names[k], or "kind(k)" when k has no name in the table.
func Name[K ~uint8](names []string, k K, kind string) string {
	if int(k) < len(names) && names[k] != "" {
		return names[k]
	}
	return fmt.Sprintf("%s(%d)", kind, uint8(k))
}

// Inc adds one to counter k.
func (s *Set[K]) Inc(k K) { s.v[k].Add(1) }

// Add adds n to counter k.
func (s *Set[K]) Add(k K, n uint64) { s.v[k].Add(n) }

// Load returns counter k.
func (s *Set[K]) Load(k K) uint64 { return s.v[k].Load() }

// Sum returns the total of every counter in the Set.
func (s *Set[K]) Sum() uint64 {
	var n uint64
	for i := range s.v {
		n += s.v[i].Load()
	}
	return n
}

// Each calls f with every counter's name and value, in enum order.
func (s *Set[K]) Each(f func(name string, v uint64)) {
	for i := range s.v {
		f(s.prefix+K(i).String(), s.v[i].Load())
	}
}

// Snapshot returns every counter of l by name.
func Snapshot(l Lister) map[string]uint64 {
	m := make(map[string]uint64)
	l.Each(func(name string, v uint64) { m[name] = v })
	return m
}

// Prefixed lists l's counters with prefix before each name.
func Prefixed(prefix string, l Lister) Lister { return prefixed{prefix, l} }

type prefixed struct {
	prefix string
	l      Lister
}

func (p prefixed) Each(f func(name string, v uint64)) {
	p.l.Each(func(name string, v uint64) { f(p.prefix+name, v) })
}

// Layer is the counters of one layer: its events, by E, and the packets it
// dropped, by reason D. Its methods may be called from any goroutine.
type Layer[E, D Enum] struct {
	events *Set[E]
	drops  *Set[D]
}

// NewLayer returns the Layer of the events E(0)..numEvents-1, listed by
// name, and the drop reasons D(0)..numDrops-1, listed as dropPrefix and
// the reason's name. It panics as NewSet does.
func NewLayer[E, D Enum](numEvents E, dropPrefix string, numDrops D) Layer[E, D] {
	return Layer[E, D]{events: NewSet("", numEvents), drops: NewSet(dropPrefix, numDrops)}
}

// Inc adds one to event e.
func (l Layer[E, D]) Inc(e E) { l.events.Inc(e) }

// Add adds n to event e.
func (l Layer[E, D]) Add(e E, n uint64) { l.events.Add(e, n) }

// Load returns the count of event e.
func (l Layer[E, D]) Load(e E) uint64 { return l.events.Load(e) }

// Drop counts one packet dropped for reason r.
func (l Layer[E, D]) Drop(r D) { l.drops.Inc(r) }

// Drops returns the packets dropped for reason r.
func (l Layer[E, D]) Drops(r D) uint64 { return l.drops.Load(r) }

// Dropped returns the packets dropped for any reason.
func (l Layer[E, D]) Dropped() uint64 { return l.drops.Sum() }

// Each lists the events, then the drops, in enum order.
func (l Layer[E, D]) Each(f func(name string, v uint64)) {
	l.events.Each(f)
	l.drops.Each(f)
}
