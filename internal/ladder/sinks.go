package ladder

import "sync"

// Recorder keeps every event it receives, for the pictures drawn after a
// story ends (internal/picture). It is safe for concurrent use.
type Recorder struct {
	mu sync.Mutex
	ev []Event
}

// NewRecorder starts an empty recorder.
func NewRecorder() *Recorder { return &Recorder{} }

// Emit keeps e.
func (r *Recorder) Emit(e Event) {
	r.mu.Lock()
	r.ev = append(r.ev, e)
	r.mu.Unlock()
}

// Events returns a copy of what was kept, in order.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.ev...)
}

// Tee hands every event to each of sinks in turn (nil ones are skipped).
func Tee(sinks ...Sink) Sink {
	var t tee
	for _, s := range sinks {
		if s != nil {
			t = append(t, s)
		}
	}
	if len(t) == 1 {
		return t[0]
	}
	return t
}

type tee []Sink

func (t tee) Emit(e Event) {
	for _, s := range t {
		s.Emit(e)
	}
}
