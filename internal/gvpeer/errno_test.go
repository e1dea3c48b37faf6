package gvpeer

import (
	"errors"
	"net"
	"syscall"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
)

func TestErrno(t *testing.T) {
	if err := Errno(nil); err != nil {
		t.Fatalf("Errno(nil) = %v", err)
	}
	for in, want := range map[tcpip.Error]error{
		&tcpip.ErrConnectionRefused{}:    syscall.ECONNREFUSED,
		&tcpip.ErrConnectionReset{}:      syscall.ECONNRESET,
		&tcpip.ErrTimeout{}:              syscall.ETIMEDOUT,
		&tcpip.ErrInvalidEndpointState{}: syscall.EINVAL,
		&tcpip.ErrAborted{}:              net.ErrClosed,
	} {
		if got := Errno(in); got != want {
			t.Errorf("Errno(%T) = %v, want %v", in, got, want)
		}
	}
	in := &tcpip.ErrWouldBlock{}
	if got := Errno(in); got.Error() != in.String() || errors.Is(got, syscall.EAGAIN) {
		t.Errorf("Errno(%T) = %v, want its text", in, got)
	}
}
