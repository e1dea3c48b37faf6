package tlslite

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// TestEventsBuiltOnlyWithObserver: over whole connections (a full
// handshake, then a resumed one, data, close_notify) no event is built
// without an Observer, so no random or secret is copied for one; with an
// Observer every event built is delivered. The eventBuilt hook sees each
// event as it is built.
func TestEventsBuiltOnlyWithObserver(t *testing.T) {
	for _, suite := range []uint16{TLS_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256} {
		for _, observed := range []bool{false, true} {
			var built, delivered atomic.Int32
			hooks := &testHooks{eventBuilt: func(Event) { built.Add(1) }}
			scfg, ccfg := serverConfig(t), clientConfig(t)
			scfg.CipherSuites = []uint16{suite}
			scfg.testHooks, ccfg.testHooks = hooks, hooks
			ccfg.ClientSessionCache = NewLRUClientSessionCache(1)
			if observed {
				obs := func(Event) { delivered.Add(1) }
				scfg.Observer, ccfg.Observer = obs, obs
			}
			for i := range 2 {
				cli, srv := mustPair(t, ccfg, scfg)
				if resumed := cli.ConnectionState().DidResume; resumed != (i == 1) {
					t.Fatalf("connection %d: resumed %v", i, resumed)
				}
				exchange(t, cli, srv, []byte("ping"))
				cli.Close()
				srv.Read(make([]byte, 1)) // close_notify
			}
			name := CipherSuiteName(suite)
			switch b, d := built.Load(), delivered.Load(); {
			case !observed && b != 0:
				t.Errorf("%s: %d events built without an Observer", name, b)
			case observed && (b != d || d < 20):
				t.Errorf("%s: %d events built, %d delivered", name, b, d)
			}
		}
	}
}

// TestObserveAllocatesNothingWithoutObserver: a builder that copies
// secrets costs no allocation when nobody observes (its closure stays on
// the stack), and does once an Observer is set.
func TestObserveAllocatesNothingWithoutObserver(t *testing.T) {
	secret := make([]byte, masterSecretLen)
	km := KeyMaterial{ClientKey: make([]byte, 16), ServerKey: make([]byte, 16), ClientIV: make([]byte, 4), ServerIV: make([]byte, 4)}
	fin := append([]byte{typeFinished, 0, 0, finishedVerifyLen}, make([]byte, finishedVerifyLen)...)
	c := &Conn{config: &Config{}}
	run := func() {
		c.observe(false, func(e endpoint) Event {
			return KeysEvent{endpoint: e, MasterSecret: slices.Clone(secret), Keys: km.clone()}
		})
		c.observeMessage(true, fin, func(m message) Event {
			return FinishedEvent{message: m, VerifyData: slices.Clone(fin[4:])}
		})
	}
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Errorf("%v allocations per event pair without an Observer", n)
	}
	c.config.Observer = func(Event) {}
	if n := testing.AllocsPerRun(100, run); n == 0 {
		t.Error("no allocation measured even with an Observer")
	}
}

// TestEventsMadeOnlyInBuilders: every event in the package is made inside
// a builder passed to observe, observeMessage or writeHandshake, which run
// it only when an Observer is set; so what an event copies is never copied
// otherwise.
func TestEventsMadeOnlyInBuilders(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var parsed []*ast.File
	events := map[string]bool{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, f)
		ast.Inspect(f, func(n ast.Node) bool {
			if ts, ok := n.(*ast.TypeSpec); ok && strings.HasSuffix(ts.Name.Name, "Event") {
				if _, ok := ts.Type.(*ast.StructType); ok {
					events[ts.Name.Name] = true
				}
			}
			return true
		})
	}
	made := 0
	for _, f := range parsed {
		var stack []ast.Node
		ast.Inspect(f, func(n ast.Node) bool {
			if n == nil {
				stack = stack[:len(stack)-1]
				return true
			}
			stack = append(stack, n)
			if lit, ok := n.(*ast.CompositeLit); ok {
				if id, ok := lit.Type.(*ast.Ident); ok && events[id.Name] {
					made++
					if !inBuilder(stack) {
						t.Errorf("%s: %s made outside a builder", fset.Position(lit.Pos()), id.Name)
					}
				}
			}
			return true
		})
	}
	if len(events) < 14 || made < 20 {
		t.Fatalf("found %d event types and %d events made; the check sees nothing", len(events), made)
	}
}

// inBuilder reports whether the innermost function literal on stack is an
// argument of a call to observe, observeMessage or writeHandshake.
func inBuilder(stack []ast.Node) bool {
	for i := len(stack) - 1; i > 0; i-- {
		if _, ok := stack[i].(*ast.FuncLit); !ok {
			continue
		}
		call, ok := stack[i-1].(*ast.CallExpr)
		if !ok {
			return false
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		return ok && (sel.Sel.Name == "observe" || sel.Sel.Name == "observeMessage" || sel.Sel.Name == "writeHandshake")
	}
	return false
}
