package jobs

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// hub listens for job changes on one connection and wakes the watchers of the changed job, so a waiting
// request or an event stream learns of a worker's progress on any machine without polling for it.
type hub struct {
	pool *pgxpool.Pool
	mu   sync.Mutex
	subs map[int64]map[chan struct{}]struct{}
}

func newHub(pool *pgxpool.Pool) *hub {
	return &hub{pool: pool, subs: map[int64]map[chan struct{}]struct{}{}}
}

// subscribe returns a channel signalled (coalesced) when job id changes, and its cancel func.
func (h *hub) subscribe(id int64) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs[id] == nil {
		h.subs[id] = map[chan struct{}]struct{}{}
	}
	h.subs[id][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs[id], ch)
		if len(h.subs[id]) == 0 {
			delete(h.subs, id)
		}
		h.mu.Unlock()
	}
}

func (h *hub) signal(id int64, all bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for job, chans := range h.subs {
		if !all && job != id {
			continue
		}
		for ch := range chans {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// run listens until ctx ends, reconnecting after a lost connection; every watcher is woken after a
// reconnect, since changes made meanwhile were not heard.
func (h *hub) run(ctx context.Context) {
	for ctx.Err() == nil {
		err := h.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		slog.Warn("jobs: listening for job changes", "err", err)
		h.signal(0, true)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (h *hub) listen(ctx context.Context) error {
	pooled, err := h.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A connection that listened is not handed back: it would keep receiving notifications.
	conn := pooled.Hijack()
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	h.signal(0, true)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if id, err := strconv.ParseInt(n.Payload, 10, 64); err == nil {
			h.signal(id, false)
		}
	}
}
