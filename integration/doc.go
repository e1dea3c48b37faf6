// Package integration tests ustack end to end: the ustack binary runs on a
// real TUN device inside a network namespace of its own, and the kernel's TCP
// and real clients (ping, curl, tshark, Go's net and net/http) talk to it.
//
// The tests need root (CAP_NET_ADMIN and CAP_SYS_ADMIN, to create namespaces
// and TUN devices). Without root each test skips and says why, except under
// CI (the CI environment variable set), where that is a failure.
//
// Network safety: every test creates its own namespace (tun.NewNamespace,
// named ustack-<purpose>-<pid>-<n>), uses addresses in 198.18.0.0/15 and
// 2001:2::/48 only, only inside that namespace, and deletes it in
// t.Cleanup, failure included.
// TestMain fails the run if any namespace of this process, or any TUN device
// named with the tests' prefix in the calling namespace, remains.
//
// Run them with
//
//	sudo go test ./integration/            # full sizes (256 MiB transfers)
//	sudo go test -short ./integration/     # smaller transfers
//
// TestMain builds ./cmd/ustack once; USTACK_BIN=/path/to/ustack tests that
// binary instead.
package integration
