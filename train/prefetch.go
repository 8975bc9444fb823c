package train

// prefetcher renders the next batches on other goroutines while the current step runs, which keeps a
// GPU busy (on two CPU cores it hardly matters). Batch k depends only on k, so the order the steps see
// is unchanged, and asking for any other k than the next simply starts over from there.
type prefetcher[T any] struct {
	make  func(k uint64) (T, error)
	depth int
	start uint64 // the batch index queue[0] will hold
	queue []chan prefetched[T]
}

type prefetched[T any] struct {
	v   T
	err error
}

func newPrefetcher[T any](depth int, make func(k uint64) (T, error)) *prefetcher[T] {
	return &prefetcher[T]{make: make, depth: max(1, depth)}
}

// get returns batch k.
func (p *prefetcher[T]) get(k uint64) (T, error) {
	if len(p.queue) == 0 || p.start != k {
		p.queue, p.start = nil, k // goroutines still running finish into their buffered channels
		for range p.depth {
			p.launch()
		}
	}
	ch := p.queue[0]
	p.queue, p.start = p.queue[1:], p.start+1
	p.launch()
	r := <-ch
	return r.v, r.err
}

func (p *prefetcher[T]) launch() {
	k := p.start + uint64(len(p.queue))
	ch := make(chan prefetched[T], 1)
	p.queue = append(p.queue, ch)
	go func() {
		v, err := p.make(k)
		ch <- prefetched[T]{v, err}
	}()
}
