package heapq

import (
	"container/heap"
	"math/rand/v2"
	"testing"
)

type item struct {
	key, id, idx int
}

func newItems() Heap[*item] {
	return New(func(a, b *item) bool { return a.key < b.key }, func(x *item, i int) { x.idx = i })
}

// ref is the plain container/heap form Heap must match, ties included.
type ref []*item

func (r ref) Len() int           { return len(r) }
func (r ref) Less(i, j int) bool { return r[i].key < r[j].key }
func (r ref) Swap(i, j int)      { r[i], r[j] = r[j], r[i] }
func (r *ref) Push(x any)        { *r = append(*r, x.(*item)) }
func (r *ref) Pop() any {
	old := *r
	x := old[len(old)-1]
	*r = old[:len(old)-1]
	return x
}

// TestMatchesContainerHeap runs the same random operations, with many
// equal keys, on a Heap and on container/heap, and wants the same element
// out every time.
func TestMatchesContainerHeap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	h := newItems()
	var r ref
	for id := range 5000 {
		switch op := rng.IntN(10); {
		case op < 5 || h.Len() == 0:
			k := rng.IntN(20)
			h.Push(&item{key: k, id: id})
			heap.Push(&r, &item{key: k, id: id})
		case op < 7:
			if a, b := h.Pop(), heap.Pop(&r).(*item); a.id != b.id || a.idx != -1 {
				t.Fatalf("Pop: %d (idx %d), want %d (idx -1)", a.id, a.idx, b.id)
			}
		case op < 8:
			i := rng.IntN(h.Len())
			if a, b := h.Remove(i), heap.Remove(&r, i).(*item); a.id != b.id {
				t.Fatalf("Remove(%d): %d, want %d", i, a.id, b.id)
			}
		default:
			i, k := rng.IntN(h.Len()), rng.IntN(20)
			h.items[i].key, r[i].key = k, k
			h.Fix(i)
			heap.Fix(&r, i)
		}
		for i, x := range h.items {
			if x.idx != i || x.id != r[i].id {
				t.Fatalf("after op %d: position %d holds %d (idx %d), want %d", id, i, x.id, x.idx, r[i].id)
			}
		}
	}
}

func TestClearAndNoIndex(t *testing.T) {
	h := New(func(a, b int) bool { return a < b }, nil)
	for _, k := range []int{5, 3, 9, 1} {
		h.Push(k)
	}
	if h.Min() != 1 || h.Pop() != 1 || h.Pop() != 3 || h.Len() != 2 {
		t.Fatal("wrong order")
	}
	h.Clear()
	if h.Len() != 0 {
		t.Fatalf("Len after Clear = %d", h.Len())
	}
}

func TestNoAllocs(t *testing.T) {
	h := newItems()
	items := make([]*item, 64)
	for i := range items {
		items[i] = &item{key: i % 7, id: i}
		h.Push(items[i])
	}
	n := testing.AllocsPerRun(100, func() {
		x := h.Pop()
		x.key = (x.key + 3) % 7
		h.Push(x)
		h.Fix(items[0].idx)
	})
	if n != 0 {
		t.Fatalf("%v allocations per Pop, Push and Fix", n)
	}
}
