// Package heapq is a binary min-heap of elements that may keep their own
// index in it, for removal and re-ordering. It runs on container/heap, so
// equal elements leave in the order container/heap gives them.
package heapq

import "container/heap"

// Heap is a min-heap of T. Its zero value has no order: make one with New.
// It is not safe for concurrent use.
type Heap[T any] struct {
	items []T
	less  func(a, b T) bool
	at    func(x T, i int)
}

// New returns an empty heap ordered by less. If at is not nil, it is told
// every element's index whenever it changes, and -1 when the element leaves
// through Pop or Remove.
func New[T any](less func(a, b T) bool, at func(x T, i int)) Heap[T] {
	return Heap[T]{less: less, at: at}
}

// Len reports the number of elements.
func (h *Heap[T]) Len() int { return len(h.items) }

// Min returns the least element, leaving it in place; the heap must not be
// empty.
func (h *Heap[T]) Min() T { return h.items[0] }

// Push adds x.
func (h *Heap[T]) Push(x T) { heap.Push((*ops[T])(h), x) }

// Pop removes and returns the least element; the heap must not be empty.
func (h *Heap[T]) Pop() T { return heap.Pop((*ops[T])(h)).(T) }

// Remove removes and returns the element at index i.
func (h *Heap[T]) Remove(i int) T { return heap.Remove((*ops[T])(h), i).(T) }

// Fix restores the order after the element at index i has changed.
func (h *Heap[T]) Fix(i int) { heap.Fix((*ops[T])(h), i) }

// Clear drops every element without telling at, keeping the storage.
func (h *Heap[T]) Clear() {
	clear(h.items)
	h.items = h.items[:0]
}

// ops is Heap as container/heap sees it.
type ops[T any] Heap[T]

func (o *ops[T]) Len() int           { return len(o.items) }
func (o *ops[T]) Less(i, j int) bool { return o.less(o.items[i], o.items[j]) }

func (o *ops[T]) Swap(i, j int) {
	o.items[i], o.items[j] = o.items[j], o.items[i]
	if o.at != nil {
		o.at(o.items[i], i)
		o.at(o.items[j], j)
	}
}

func (o *ops[T]) Push(x any) {
	t := x.(T)
	if o.at != nil {
		o.at(t, len(o.items))
	}
	o.items = append(o.items, t)
}

func (o *ops[T]) Pop() any {
	n := len(o.items) - 1
	t := o.items[n]
	var zero T
	o.items[n] = zero
	o.items = o.items[:n]
	if o.at != nil {
		o.at(t, -1)
	}
	return t
}
