package admin

import (
	"context"
	"fmt"
	"sync"

	"github.com/memoflow/memoflow/schemas/registry"
)

// memRegistry is an in-memory Reader and Writer for the import's unit
// tests: it validates changes as the registry does (Change.Validate) and
// applies them all or none. The Kafka-backed View and Writer are tested
// with kfake in registry_kafka_test.go.
type memRegistry struct {
	mu      sync.RWMutex
	m       map[string]registry.Entity
	applied [][]registry.Change
	fail    error
}

func newMemRegistry(es ...registry.Entity) *memRegistry {
	r := &memRegistry{m: map[string]registry.Entity{}}
	for _, e := range es {
		r.m[e.Key()] = e
	}
	return r
}

func (r *memRegistry) Get(key string) (registry.Entity, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.m[key]
	return e, ok
}

func (r *memRegistry) Each(kind registry.Kind, org string, fn func(registry.Entity) bool) {
	r.mu.RLock()
	var es []registry.Entity
	for _, e := range r.m {
		if e.Kind() == kind && (org == "" || entityOrg(e) == org) {
			es = append(es, e)
		}
	}
	r.mu.RUnlock()
	for _, e := range es {
		if !fn(e) {
			return
		}
	}
}

func (r *memRegistry) Write(ctx context.Context, cs ...registry.Change) error {
	if r.fail != nil {
		return r.fail
	}
	for i := range cs {
		if err := cs[i].Validate(); err != nil {
			return fmt.Errorf("change %s: %w", cs[i].Key, err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cs {
		if c.Entity == nil {
			delete(r.m, c.Key)
		} else {
			r.m[c.Key] = c.Entity
		}
	}
	r.applied = append(r.applied, cs)
	return nil
}

func (r *memRegistry) len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.m)
}
