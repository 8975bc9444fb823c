package stepcache

import "github.com/cachetlab/cachet/model"

// units are a policy's cached features per unit (a block's sublayer output, its keys and values), held
// under the policy's memory account.
type units struct {
	l *ledger
	m map[unitKey]*model.Feature
}

func newUnits(l *ledger) units { return units{l: l, m: map[unitKey]*model.Feature{}} }

func (u units) get(key unitKey) *model.Feature { return u.m[key] }

// keep stores a clone of v (borrowed) as key's feature.
func (u units) keep(key unitKey, v *model.Feature) error {
	c, err := v.Clone()
	if err != nil {
		return err
	}
	u.put(key, c)
	return nil
}

// put replaces key's feature by f (owned from now on).
func (u units) put(key unitKey, f *model.Feature) {
	old := u.m[key]
	u.l.swap(&old, f)
	u.m[key] = f
}

// compute runs compute over every token and keeps the result as key's feature; the caller gets its own.
func (u units) compute(key unitKey, compute func(*model.Tokens) (*model.Feature, error)) (*model.Feature, error) {
	v, err := compute(nil)
	if err != nil {
		return nil, err
	}
	if err := u.keep(key, v); err != nil {
		return nil, err
	}
	return v.Clone()
}

func (u units) len() int { return len(u.m) }

func (u units) drop() {
	for k, f := range u.m {
		u.l.swap(&f, nil)
		delete(u.m, k)
	}
}

// residualObserver is a block-stack hook that runs every block and hands the stack's residual
// (output − input, owned) to keep; the output goes on unchanged. Recorders and policies that keep or
// measure residuals share it.
func residualObserver(depth int, keep func(residual *model.Feature) error) func(*model.Feature, func(from, to int, x *model.Feature) (*model.Feature, error)) (*model.Feature, error) {
	return func(x *model.Feature, run func(from, to int, x *model.Feature) (*model.Feature, error)) (*model.Feature, error) {
		out, err := run(0, depth, x)
		if err != nil {
			return nil, err
		}
		res, err := out.Sub(x)
		if err != nil {
			return nil, err
		}
		if err := keep(res); err != nil {
			return nil, err
		}
		return out.Clone()
	}
}

// bytesOf is the memory of a list of features.
func bytesOf(fs []*model.Feature) int64 {
	var n int64
	for _, f := range fs {
		n += f.Bytes()
	}
	return n
}

// dropAll drops a list of features.
func dropAll(fs []*model.Feature) {
	for _, f := range fs {
		f.Drop()
	}
}
