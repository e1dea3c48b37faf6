package record

// Where returns the packets that match f.
func Where(pk []Pkt, f func(p Pkt) bool) []Pkt {
	var out []Pkt
	for _, p := range pk {
		if f(p) {
			out = append(out, p)
		}
	}
	return out
}

// First returns the first packet that matches f.
func First(pk []Pkt, f func(p Pkt) bool) (Pkt, bool) {
	for _, p := range pk {
		if f(p) {
			return p, true
		}
	}
	return Pkt{}, false
}

// Any is a WaitPkts condition: some packet matches.
func Any(match func(Pkt) bool) func([]Pkt) bool {
	return func(pk []Pkt) bool {
		_, ok := First(pk, match)
		return ok
	}
}

// AtLeast is a WaitPkts condition: n packets recorded.
func AtLeast(n int) func([]Pkt) bool { return func(pk []Pkt) bool { return len(pk) >= n } }

// HasRun reports whether want appears in list as a contiguous run.
func HasRun(list []string, want ...string) bool {
	for i := 0; i+len(want) <= len(list); i++ {
		ok := true
		for j, w := range want {
			if list[i+j] != w {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// Stream reassembles the TCP payload one direction carried (SYN first,
// then by sequence number), skipping what was dropped.
func Stream(pk []Pkt, toServer bool) []byte {
	var next uint32
	have := false
	data := map[uint32][]byte{}
	for _, p := range pk {
		if p.ToServer != toServer || p.Dropped {
			continue
		}
		if p.Flags&0x02 != 0 && !have {
			next, have = p.Seq+1, true
		}
		if len(p.Payload) > 0 {
			if old, ok := data[p.Seq]; !ok || len(p.Payload) > len(old) {
				data[p.Seq] = p.Payload
			}
		}
	}
	var out []byte
	for have {
		d, ok := data[next]
		if !ok {
			break
		}
		out = append(out, d...)
		next += uint32(len(d))
	}
	return out
}
