package fieldcrypt_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// gen makes Profile values whose every string is unique and tagged with
// what it is: "U" for a value not shared with the recipient under test,
// "S" for a sensitive one, "C" for a clear shared one. The tag is decided
// by hand from the struct tags, per recipient.
type gen struct {
	r *rand.Rand
	n int
}

func (g *gen) word() string {
	g.n++
	const letters = "abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 10)
	for i := range b {
		b[i] = letters[g.r.IntN(len(letters))]
	}
	return fmt.Sprintf("%s%04d", b, g.n)
}

func (g *gen) person() Person { return Person{Name: "P" + g.word(), Email: "E" + g.word()} }

func (g *gen) acct() Acct {
	a := Acct{IBAN: "I" + g.word(), Balance: g.r.Float64()*1e6 - 5e5, Kind: "K" + g.word()}
	for range g.r.IntN(3) {
		a.Owners = append(a.Owners, g.person())
	}
	return a
}

func (g *gen) profile() Profile {
	p := Profile{
		ID: "ID" + g.word(), Name: "N" + g.word(), SSN: fmt.Sprintf("%09d", g.r.IntN(1e9)), Region: "R" + g.word(),
		Address:  Address{Street: "ST" + g.word(), City: "CI" + g.word(), Geo: "GEO" + g.word()},
		Joined:   time.Unix(g.r.Int64N(4e9), 0).UTC(),
		Internal: "INT" + g.word(),
	}
	for range g.r.IntN(4) {
		p.Accounts = append(p.Accounts, g.acct())
	}
	if g.r.IntN(2) == 0 {
		m := g.person()
		p.Manager = &m
	}
	if g.r.IntN(2) == 0 {
		b := g.person()
		p.Backup = &b
	}
	if g.r.IntN(2) == 0 {
		p.Limits = map[string]float64{"L" + g.word(): g.r.Float64()}
		p.Secrets = map[string]string{"SK" + g.word(): "SV" + g.word()}
		p.Ledger = map[int]*Acct{g.r.IntN(100): ptr(g.acct())}
	}
	if g.r.IntN(2) == 0 {
		b := time.Unix(g.r.Int64N(2e9), 0).UTC()
		p.Birthday = &b
	}
	for range g.r.IntN(3) {
		p.Tags = append(p.Tags, "T"+g.word())
	}
	p.Raw = []byte("RAW" + g.word())
	return p
}

func ptr[T any](v T) *T { return &v }

// secretsFor lists, per recipient, the strings that must not appear in its
// sealed bytes (unshared values, sensitive plaintexts) and the member names
// that must not appear (unshared fields). Written from the tags by hand.
func secretsFor(p Profile, recipient string) (values []string, members []string) {
	values = append(values, p.Internal, p.Address.Geo, p.Name, p.SSN)
	members = append(members, "internal", "geo")
	if p.Backup != nil {
		values = append(values, p.Backup.Name, p.Backup.Email) // the whole backup is encrypted
	}
	switch recipient {
	case financial:
		values = append(values, p.Region, p.Address.Street, base64.StdEncoding.EncodeToString(p.Raw), string(p.Raw))
		members = append(members, "region", "tags", "kind")
		values = append(values, p.Tags...)
		for k, v := range p.Secrets {
			values = append(values, k, v)
		}
		accts := append([]Acct(nil), p.Accounts...)
		for _, a := range p.Ledger {
			if a != nil {
				accts = append(accts, *a)
			}
		}
		for _, a := range accts {
			values = append(values, a.IBAN, a.Kind)
			for _, o := range a.Owners {
				values = append(values, o.Email)
			}
		}
		if p.Manager != nil {
			values = append(values, p.Manager.Email)
		}
		if p.Birthday != nil {
			values = append(values, p.Birthday.Format(time.RFC3339Nano))
		}
	case analytics:
		values = append(values, p.Address.Street, p.Address.City, string(p.Raw), base64.StdEncoding.EncodeToString(p.Raw))
		members = append(members, "ssn", "address", "manager", "limits", "secrets", "birthday", "raw", "ledger",
			"iban", "owners", "city", "street", "email")
		for k, v := range p.Secrets {
			values = append(values, k, v)
		}
		for k := range p.Limits {
			values = append(values, k)
		}
		for _, a := range p.Accounts {
			values = append(values, a.IBAN)
			for _, o := range a.Owners {
				values = append(values, o.Name, o.Email)
			}
		}
		if p.Manager != nil {
			values = append(values, p.Manager.Name, p.Manager.Email)
		}
		if p.Birthday != nil {
			values = append(values, p.Birthday.Format(time.RFC3339Nano))
		}
	}
	return values, members
}

// No unshared field (name or value) and no sensitive plaintext ever appears
// in the sealed bytes, over generated values, for both recipients; and each
// recipient opens exactly its fields.
func TestPropertyNoLeak(t *testing.T) {
	w := newWorld(t)
	g := &gen{r: rand.New(rand.NewPCG(1, 2))}
	n := 300
	if testing.Short() {
		n = 50
	}
	for i := range n {
		p := g.profile()
		for _, r := range []string{financial, analytics} {
			env, err := w.sender.Seal(&p, r)
			if err != nil {
				t.Fatalf("value %d for %s: %v", i, r, err)
			}
			values, members := secretsFor(p, r)
			for _, v := range values {
				if v != "" && bytes.Contains(env, []byte(v)) {
					t.Fatalf("value %d for %s: %q appears in the envelope:\n%s", i, r, v, env)
				}
			}
			for _, m := range members {
				if bytes.Contains(env, []byte(`"`+m+`":`)) {
					t.Fatalf("value %d for %s: member %q appears in the envelope:\n%s", i, r, m, env)
				}
			}
			var out Profile
			codec := w.finC
			if r == analytics {
				codec = w.anaC
			}
			if _, err := codec.Open(env, &out); err != nil {
				t.Fatalf("value %d: Open by %s: %v", i, r, err)
			}
			if want := wantFor(p, r); !reflect.DeepEqual(normalize(out), normalize(want)) {
				t.Fatalf("value %d: %s got %+v\nwant %+v", i, r, out, want)
			}
		}
	}
}
