package tcp

import "fmt"

// State is a TCP connection state (RFC 9293 §3.3.2).
type State uint8

// The eleven states of RFC 9293 §3.3.2.
const (
	Closed State = iota
	Listen
	SynSent
	SynReceived
	Established
	FinWait1
	FinWait2
	CloseWait
	Closing
	LastAck
	TimeWait
	numStates
)

var stateNames = [numStates]string{
	"CLOSED", "LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1",
	"FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT",
}

func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Synchronized reports whether the state is one of those after the
// handshake's SYNs have been exchanged (RFC 9293 §3.5).
func (s State) Synchronized() bool { return s >= Established }

// legal lists every transition the state diagram of RFC 9293 §3.3.2 allows,
// plus the abort edges to CLOSED (RST received, user ABORT, retry limit).
var legal = [numStates][numStates]bool{
	Closed:      {Listen: true, SynSent: true},
	Listen:      {SynReceived: true, SynSent: true, Closed: true},
	SynSent:     {SynReceived: true, Established: true, Closed: true},
	SynReceived: {Established: true, FinWait1: true, Listen: true, CloseWait: true, Closed: true},
	Established: {FinWait1: true, CloseWait: true, Closed: true},
	FinWait1:    {FinWait2: true, Closing: true, TimeWait: true, Closed: true},
	FinWait2:    {TimeWait: true, Closed: true},
	CloseWait:   {LastAck: true, Closed: true},
	Closing:     {TimeWait: true, Closed: true},
	LastAck:     {Closed: true},
	TimeWait:    {Closed: true},
}

// Legal reports whether from→to is an edge of the state diagram.
func Legal(from, to State) bool { return from < numStates && to < numStates && legal[from][to] }
