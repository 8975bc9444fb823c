package storage

import (
	"context"
	"strings"
	"time"
)

// Orphans says which stored objects belong to rows: Owner names the row a key belongs to (false: not a
// key the sweep manages), Existing returns which of the owners have rows.
type Orphans struct {
	Prefix   string
	Owner    func(key string) (string, bool)
	Existing func(ctx context.Context, owners []string) ([]string, error)
}

// RemoveOrphans deletes every object under o.Prefix whose owner has no row, once the owner's newest object
// is older than olderThan (a write whose row is about to commit is left alone), and returns how many owners
// it cleared. Objects a crash or an outage left behind are found this way rather than remembered.
func (s *Objects) RemoveOrphans(ctx context.Context, o Orphans, olderThan time.Duration) (int, error) {
	objects, err := s.List(ctx, o.Prefix)
	if err != nil {
		return 0, err
	}
	keys := map[string][]string{}
	newest := map[string]time.Time{}
	for _, obj := range objects {
		owner, ok := o.Owner(obj.Key)
		if !ok {
			continue
		}
		keys[owner] = append(keys[owner], obj.Key)
		if t, seen := newest[owner]; !seen || obj.LastModified.After(t) {
			newest[owner] = obj.LastModified
		}
	}
	if len(keys) == 0 {
		return 0, nil
	}
	owners := make([]string, 0, len(keys))
	for owner := range keys {
		owners = append(owners, owner)
	}
	existing, err := o.Existing(ctx, owners)
	if err != nil {
		return 0, err
	}
	for _, owner := range existing {
		delete(keys, owner)
	}
	cutoff := time.Now().Add(-olderThan)
	removed := 0
	for owner, ks := range keys {
		if newest[owner].After(cutoff) {
			continue
		}
		for _, k := range ks {
			if err := s.Delete(ctx, k); err != nil {
				return removed, err
			}
		}
		removed++
	}
	return removed, nil
}

// OwnerBetween is an Orphans.Owner for keys prefix + owner + rest, where rest starts with sep (and owner
// passes valid).
func OwnerBetween(prefix, sep string, valid func(string) bool) func(string) (string, bool) {
	return func(key string) (string, bool) {
		rest, ok := strings.CutPrefix(key, prefix)
		if !ok {
			return "", false
		}
		owner, _, ok := strings.Cut(rest, sep)
		return owner, ok && valid(owner)
	}
}
