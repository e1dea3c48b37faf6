package lab

// What an eavesdropper reads in a recorded TLS 1.2 connection: the TCP
// streams, their records (RFC 5246 §6.2.1) and the handshake messages sent
// in the clear before each side's ChangeCipherSpec (§7.4). The labs parse
// the recording themselves, with nothing from the two ends.

import (
	"golang.org/x/crypto/cryptobyte"

	"ustack/internal/record"
	"ustack/stack/header"
)

// Handshake message and record types, RFC 5246 §7.4 and §6.2.1.
const (
	wireClientHello       = 1
	wireServerHello       = 2
	wireNewSessionTicket  = 4
	wireCertificate       = 11
	wireServerKeyExchange = 12
	wireServerHelloDone   = 14
	wireClientKeyExchange = 16
	wireCCS               = 20
	wireHandshake         = 22
	wireApplicationData   = 23
	wireExtEMS            = 23 // extended_master_secret, RFC 7627 §5.1
)

// labClientPort is the client's port of a recorded segment.
func labClientPort(p record.Pkt) uint16 {
	if p.ToServer {
		return p.SrcPort
	}
	return p.DstPort
}

// labConnPkts is the segments of the connection from the client's port.
func labConnPkts(pk []record.Pkt, port uint16) []record.Pkt {
	return record.Where(pk, func(p record.Pkt) bool { return labClientPort(p) == port })
}

// labWire is one recorded TLS connection as an eavesdropper parses it.
type labWire struct {
	up, down         []byte   // the TCP payload, client to server and back
	upMsgs, downMsgs [][]byte // handshake messages in the clear, header included
}

func parseLabWire(pk []record.Pkt) labWire {
	w := labWire{up: record.Stream(pk, true), down: record.Stream(pk, false)}
	w.upMsgs, w.downMsgs = labPlainMessages(w.up), labPlainMessages(w.down)
	return w
}

// labRecords splits a stream into whole records.
func labRecords(s []byte) [][]byte {
	var out [][]byte
	for len(s) >= 5 {
		n := 5 + (int(s[3])<<8 | int(s[4]))
		if len(s) < n {
			break
		}
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}

// labPlainMessages reassembles the handshake messages a stream carries
// before its ChangeCipherSpec (one record may hold several, RFC 5246
// §6.2.1).
func labPlainMessages(s []byte) [][]byte {
	var hs []byte
	for _, rec := range labRecords(s) {
		if rec[0] == wireCCS {
			break
		}
		if rec[0] == wireHandshake {
			hs = append(hs, rec[5:]...)
		}
	}
	var msgs [][]byte
	for len(hs) >= 4 {
		n := 4 + (int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3]))
		if len(hs) < n {
			break
		}
		msgs = append(msgs, hs[:n])
		hs = hs[n:]
	}
	return msgs
}

// msg returns the first message of type typ in msgs, or nil.
func labMsg(msgs [][]byte, typ uint8) []byte {
	for _, m := range msgs {
		if m[0] == typ {
			return m
		}
	}
	return nil
}

// wireHello is what the hellos say in the clear (RFC 5246 §7.4.1.2-3).
type wireHello struct {
	clientRandom, serverRandom []byte
	suite                      uint16
	sessionID                  []byte // the ServerHello's
	ems                        bool   // the server agreed to RFC 7627
	ok                         bool
}

// hello parses the two hellos.
func (w labWire) hello() wireHello {
	var h wireHello
	ch, sh := labMsg(w.upMsgs, wireClientHello), labMsg(w.downMsgs, wireServerHello)
	if len(ch) < 38 || len(sh) < 38 {
		return h
	}
	h.clientRandom = ch[6:38]
	in := cryptobyte.String(sh[4:])
	var vers uint16
	var comp uint8
	var exts cryptobyte.String
	if !in.ReadUint16(&vers) || !in.ReadBytes(&h.serverRandom, 32) || !in.ReadUint8LengthPrefixed((*cryptobyte.String)(&h.sessionID)) ||
		!in.ReadUint16(&h.suite) || !in.ReadUint8(&comp) {
		return h
	}
	if !in.Empty() && !in.ReadUint16LengthPrefixed(&exts) {
		return h
	}
	for !exts.Empty() {
		var typ uint16
		var body cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&body) {
			return h
		}
		h.ems = h.ems || typ == wireExtEMS
	}
	h.ok = true
	return h
}

// emsTranscript is what RFC 7627's session hash covers: ClientHello, the
// server's first flight through ServerHelloDone, then the client's
// messages through ClientKeyExchange, in the order they were sent.
func (w labWire) emsTranscript() []byte {
	if len(w.upMsgs) == 0 {
		return nil
	}
	t := append([]byte(nil), w.upMsgs[0]...)
	for _, m := range w.downMsgs {
		t = append(t, m...)
		if m[0] == wireServerHelloDone {
			break
		}
	}
	for _, m := range w.upMsgs[1:] {
		t = append(t, m...)
		if m[0] == wireClientKeyExchange {
			break
		}
	}
	return t
}

// appRecords counts a stream's application-data records.
func labAppRecords(s []byte) int {
	n := 0
	for _, rec := range labRecords(s) {
		if rec[0] == wireApplicationData {
			n++
		}
	}
	return n
}

// labFINOn reports whether the client's FIN on port has been recorded:
// every record of that connection is in.
func labFINOn(port uint16) func([]record.Pkt) bool {
	return record.Any(func(p record.Pkt) bool { return p.ToServer && labClientPort(p) == port && p.Has(header.FlagFIN) })
}
