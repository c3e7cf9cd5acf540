package transport

import "testing"

// The store a verifier makes for itself gives each caller an equal share,
// at least a quarter: a sole caller (the common frontend → service case)
// may use the whole store.
func TestDefaultReplayStoreShare(t *testing.T) {
	key := func(id string) Key {
		k, err := NewKey(id, []byte("0123456789abcdef0123456789abcdef-"+id))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	for _, tc := range []struct {
		callers []string
		want    int
	}{
		{[]string{"frontend"}, DefaultReplayEntries},
		{[]string{"frontend", "analytics-service"}, DefaultReplayEntries / 2},
		{[]string{"frontend", "analytics-service", "billing"}, DefaultReplayEntries / 3},
		{[]string{"a", "b", "c", "d"}, DefaultReplayEntries / 4},
		{[]string{"a", "b", "c", "d", "e", "f"}, DefaultReplayEntries / 4},
	} {
		var keys []KeyEntry
		for _, c := range tc.callers {
			keys = append(keys, KeyEntry{Caller: c, Key: key(c)})
		}
		v, err := New(Config{Service: "financial-service", Environment: Development, Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		if v.memReplay == nil || v.memReplay.perCaller != tc.want {
			t.Errorf("%d caller(s): per-caller share %v, want %d", len(tc.callers), v.memReplay, tc.want)
		}
	}
}
