package stack

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"ustack/stack/link"
	"ustack/stack/tcp"
	"ustack/stack/tcp/cc"
)

// TestUnknownCCIsAnError: a misspelt congestion control fails stack.New
// (and a per-connection configuration fails Listen and Dial), naming the
// known ones, instead of quietly running NewReno.
func TestUnknownCCIsAnError(t *testing.T) {
	ea, _ := link.Pipe(1500)
	_, err := New(ea, Options{Addr: addrA, TCP: tcp.Config{CC: "cubc"}})
	want := `stack: unknown congestion control "cubc" (known: bbr, cubic, newreno, reno)`
	if err == nil || err.Error() != want || !errors.Is(err, cc.ErrUnknown) {
		t.Fatalf("New with CC cubc: %v, want %s", err, want)
	}
	for _, name := range []string{"", "cubic", "reno", "newreno"} {
		ea, _ := link.Pipe(1500)
		s, err := New(ea, Options{Addr: addrA, TCP: tcp.Config{CC: name}})
		if err != nil {
			t.Fatalf("New with CC %q: %v", name, err)
		}
		s.Close()
	}
	a, _ := pair(t, Options{}, Options{})
	if _, err := a.ListenTCPConfig(80, tcp.Config{CC: "vegas"}); !errors.Is(err, cc.ErrUnknown) {
		t.Errorf("ListenTCPConfig with CC vegas: %v", err)
	}
	if _, err := a.DialTCPConfig(context.Background(), netip.AddrPortFrom(addrB, 80), tcp.Config{CC: "vegas"}); !errors.Is(err, cc.ErrUnknown) {
		t.Errorf("DialTCPConfig with CC vegas: %v", err)
	}
	if _, err := a.DialTCPAsync(netip.AddrPortFrom(addrB, 80), tcp.Config{CC: "vegas"}); !errors.Is(err, cc.ErrUnknown) {
		t.Errorf("DialTCPAsync with CC vegas: %v", err)
	}
}
