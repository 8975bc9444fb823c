package model

import (
	"errors"

	"github.com/sugarme/gotch/ts"
)

// Scope owns the tensors created during one unit of work (a step, a request) and drops them together.
// Code that creates a tensor either drops it itself or hands it to a Scope; nothing relies on finalizers.
type Scope struct {
	owned []*ts.Tensor
}

// Keep registers t with the scope and returns it, so calls can be chained: x := s.Keep(op(...)).
func (s *Scope) Keep(t *ts.Tensor) *ts.Tensor {
	if t != nil {
		s.owned = append(s.owned, t)
	}
	return t
}

// Track registers the result of an error-returning gotch call; on error it returns the error unchanged.
func (s *Scope) Track(t *ts.Tensor, err error) (*ts.Tensor, error) {
	if err != nil {
		return nil, err
	}
	return s.Keep(t), nil
}

// Release removes t from the scope without dropping it (the caller takes ownership).
func (s *Scope) Release(t *ts.Tensor) *ts.Tensor {
	for i, o := range s.owned {
		if o == t {
			s.owned = append(s.owned[:i], s.owned[i+1:]...)
			break
		}
	}
	return t
}

// Drop frees every tensor the scope holds.
func (s *Scope) Drop() error {
	var errs []error
	for _, t := range s.owned {
		errs = append(errs, t.Drop())
	}
	s.owned = s.owned[:0]
	return errors.Join(errs...)
}

// Len is the number of tensors held.
func (s *Scope) Len() int { return len(s.owned) }
