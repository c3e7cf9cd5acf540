package fieldcrypt_test

import (
	"reflect"
	"sync"
	"testing"
)

// One codec seals and opens from many goroutines (run with -race).
func TestConcurrentUse(t *testing.T) {
	w := newWorld(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			p := sampleProfile()
			p.ID = string(rune('a' + i))
			for range 20 {
				for _, r := range []string{financial, analytics} {
					env, err := w.sender.Seal(&p, r)
					if err != nil {
						t.Error(err)
						return
					}
					c := w.finC
					if r == analytics {
						c = w.anaC
					}
					var out Profile
					if _, err := c.Open(env, &out); err != nil {
						t.Error(err)
						return
					}
					if !reflect.DeepEqual(normalize(out), normalize(wantFor(p, r))) {
						t.Errorf("goroutine %d: wrong value for %s", i, r)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}
