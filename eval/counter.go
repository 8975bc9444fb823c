package eval

import (
	"fmt"
	"math"
	"sort"
)

// Counter tallies correct/total per named attribute (class, size, position,
// …). The zero value is ready to use. It is not safe for concurrent use.
type Counter struct {
	tallies map[string]*CounterEntry
}

// CounterEntry is one attribute's tally; it is what Counter.Entries returns
// and encodes directly as JSON.
type CounterEntry struct {
	Name     string  `json:"name"`
	Correct  int     `json:"correct"`
	Total    int     `json:"total"`
	Accuracy float64 `json:"accuracy"`
}

// Add records one observation for name.
func (c *Counter) Add(name string, correct bool) {
	n := 0
	if correct {
		n = 1
	}
	c.AddN(name, n, 1)
}

// AddN records total observations for name, correct of them right; it lets
// callers merge counts from batches or workers.
func (c *Counter) AddN(name string, correct, total int) {
	if c.tallies == nil {
		c.tallies = make(map[string]*CounterEntry)
	}
	e, ok := c.tallies[name]
	if !ok {
		e = &CounterEntry{Name: name}
		c.tallies[name] = e
	}
	e.Correct += correct
	e.Total += total
}

// Accuracy returns correct/total for name, NaN if name was never seen.
func (c *Counter) Accuracy(name string) float64 {
	e, ok := c.tallies[name]
	if !ok || e.Total == 0 {
		return math.NaN()
	}
	return float64(e.Correct) / float64(e.Total)
}

// Entries returns the tallies sorted by name, with Accuracy filled in (0 for
// an attribute with no observations, so the slice always encodes as JSON).
func (c *Counter) Entries() []CounterEntry {
	out := make([]CounterEntry, 0, len(c.tallies))
	for _, e := range c.tallies {
		cp := *e
		if cp.Total > 0 {
			cp.Accuracy = float64(cp.Correct) / float64(cp.Total)
		}
		out = append(out, cp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Table renders the tallies, sorted by name, as a report table.
func (c *Counter) Table(title string) Table {
	t := Table{Title: title, Columns: []string{"attribute", "correct", "total", "accuracy"}}
	for _, e := range c.Entries() {
		t.Rows = append(t.Rows, []string{
			e.Name,
			fmt.Sprint(e.Correct),
			fmt.Sprint(e.Total),
			fmt.Sprintf("%.2f %%", 100*e.Accuracy),
		})
	}
	return t
}
