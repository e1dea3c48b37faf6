package ladder

import (
	"encoding/json"
	"io"
	"math"
	"sync"
	"time"
)

// The kinds of Event.
const (
	KindTitle    = "title"    // the demo's first line: Text, Namespace (with a TUN)
	KindLab      = "lab"      // a lab starts: Lab, Title, Mode, Break
	KindHeader   = "header"   // the ladder's column titles: Client, Server
	KindSegment  = "segment"  // a TCP segment: Dir, Label, Segment fields, the states beside it
	KindTLS      = "tls"      // a TLS message: Dir, Label, Message, Bytes, the states beside it
	KindState    = "state"    // a state transition of one side: Side, FromState, ToState, Cause
	KindNote     = "note"     // narration: Text
	KindSection  = "section"  // a heading inside a lab's story: Text
	KindClaim    = "claim"    // a checked statement: OK, Text
	KindVerdict  = "verdict"  // a lab's end: Lab, Pass, Text (the first claim that failed)
	KindSummary  = "summary"  // lab all's end: Passed, Failed
	KindScenario = "scenario" // one line of the lab list: Lab, Title, Text
	KindSample   = "sample"   // one point of a sender's congestion state: Series, Cwnd, Ssthresh, InFlight
)

// Directions of an arrow.
const (
	ToServer = "to_server"
	ToClient = "to_client"
)

// Event is one thing a demo or a lab tells. With --json each is written as
// one JSON object per line; fields that do not apply to a kind are left out.
type Event struct {
	// T is the time since the ladder started, in milliseconds (virtual
	// time in the in-memory labs); 0 before a ladder exists.
	T    float64 `json:"t"`
	Kind string  `json:"kind"`

	// An arrow (segment, tls): its direction, its text on the ladder, and
	// the states drawn beside it. A kernel client's states cannot be seen:
	// they are inferred from its packets and marked with "~".
	Dir         string `json:"dir,omitempty"`
	Label       string `json:"label,omitempty"`
	ClientState string `json:"client_state,omitempty"`
	ServerState string `json:"server_state,omitempty"`
	*Segment
	*TLS
	*Transition

	Text      string `json:"text,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Client    string `json:"client,omitempty"` // header
	Server    string `json:"server,omitempty"` // header
	*Outcome
	*LabInfo
	*Sample
}

// Sample is one point of a sender's congestion state over time, for the
// plots of the congestion labs. The text ladder does not draw it.
type Sample struct {
	Series   string `json:"series"`   // which sender: "cubic", "newreno+sack", ...
	Cwnd     int    `json:"cwnd"`     // congestion window, bytes
	Ssthresh int    `json:"ssthresh"` // slow-start threshold, bytes (0: not set yet)
	InFlight int    `json:"in_flight"`
}

// Segment is what a segment event tells about the segment.
type Segment struct {
	Flags string `json:"flags"` // "SYN|ACK"; PSH is left out
	// Seq and Ack are relative to each side's initial sequence number, as
	// the ladder draws them (absolute for an injected segment).
	Seq    uint32 `json:"seq"`
	Ack    uint32 `json:"ack"`
	Len    int    `json:"len"`
	AbsSeq uint32 `json:"abs_seq"`
	AbsAck uint32 `json:"abs_ack"`
	// Dropped: the lab lost this segment on purpose; Injected: the lab
	// wrote it into the link (an old duplicate).
	Dropped  bool `json:"dropped,omitempty"`
	Injected bool `json:"injected,omitempty"`
}

// TLS is what a tls event tells about the message.
type TLS struct {
	// Message is the handshake message's name (ClientHello, ...),
	// ChangeCipherSpec, Alert or ApplicationData.
	Message string `json:"message"`
	Bytes   int    `json:"bytes,omitempty"` // ApplicationData: the record's length
}

// Transition is what a state event tells.
type Transition struct {
	Side      string `json:"side"` // "client" or "server"
	FromState string `json:"from_state"`
	ToState   string `json:"to_state"`
	Cause     string `json:"cause,omitempty"`
}

// Outcome is what a claim, verdict or summary event tells.
type Outcome struct {
	OK     bool `json:"ok"` // claim: it held; verdict: every claim held
	Passed int  `json:"passed,omitempty"`
	Failed int  `json:"failed,omitempty"`
}

// LabInfo names the lab of a lab, verdict or scenario event.
type LabInfo struct {
	Lab   string `json:"lab"`
	Title string `json:"title,omitempty"`
	Mode  string `json:"mode,omitempty"`
	Break string `json:"break,omitempty"` // the hidden --break value, if any
}

// Sink receives the events of a story in order.
type Sink interface {
	Emit(Event)
}

// JSON writes each event as one line of JSON.
type JSON struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// NewJSON writes events to w.
func NewJSON(w io.Writer) *JSON {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &JSON{enc: enc}
}

// Emit writes e.
func (j *JSON) Emit(e Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.enc.Encode(e)
}

// millis is d in milliseconds, to the microsecond.
func millis(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}
