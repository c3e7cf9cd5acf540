package fieldcrypt_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tink-crypto/tink-go/v2/daead"
	"github.com/tink-crypto/tink-go/v2/hybrid"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/lifenavigator/crossservice/envelope"
	"github.com/lifenavigator/crossservice/fieldcrypt"
)

const (
	frontend  = "frontend"
	financial = "financial-service"
	analytics = "analytics-service"
)

// party is one service's keys: its private HPKE keyset (public part for
// senders) and its deterministic keyset (shared with senders).
type party struct {
	name      string
	priv, pub *keyset.Handle
	det       *keyset.Handle
}

func newParty(tb testing.TB, name string) *party {
	tb.Helper()
	priv, err := keyset.NewHandle(hybrid.DHKEM_X25519_HKDF_SHA256_HKDF_SHA256_AES_256_GCM_Key_Template())
	if err != nil {
		tb.Fatal(err)
	}
	pub, err := priv.Public()
	if err != nil {
		tb.Fatal(err)
	}
	det, err := keyset.NewHandle(daead.AESSIVKeyTemplate())
	if err != nil {
		tb.Fatal(err)
	}
	return &party{name: name, priv: priv, pub: pub, det: det}
}

func (p *party) recipient(tb testing.TB) fieldcrypt.Recipient {
	tb.Helper()
	r, err := envelope.NewHPKERecipient(p.pub)
	if err != nil {
		tb.Fatal(err)
	}
	return fieldcrypt.Recipient{To: r, Deterministic: p.det}
}

func (p *party) identity(tb testing.TB) envelope.Identity {
	tb.Helper()
	id, err := envelope.NewHPKEIdentity(p.priv)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// codec returns p's codec, sealing for the given peers.
func (p *party) codec(tb testing.TB, peers ...*party) *fieldcrypt.Codec {
	tb.Helper()
	return p.codecWith(tb, fieldcrypt.Config{}, peers...)
}

func (p *party) codecWith(tb testing.TB, cfg fieldcrypt.Config, peers ...*party) *fieldcrypt.Codec {
	tb.Helper()
	cfg.Self = p.name
	cfg.Identity = p.identity(tb)
	cfg.Deterministic = p.det
	cfg.Recipients = map[string]fieldcrypt.Recipient{}
	for _, q := range peers {
		cfg.Recipients[q.name] = q.recipient(tb)
	}
	c, err := fieldcrypt.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// sealerFor returns a raw envelope sealer from p to q, for building
// envelopes a codec would never write (the tag is valid, the content is
// not what the plan says).
func (p *party) sealerFor(tb testing.TB, q *party) *envelope.Sealer {
	tb.Helper()
	s, err := envelope.NewSealer(envelope.SealerConfig{
		Sender: p.name, Recipient: q.name, To: q.recipient(tb).To, Deterministic: q.det,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// parts splits an envelope into its members and decodes data.
func parts(tb testing.TB, env []byte) (*envelope.Envelope, map[string]json.RawMessage) {
	tb.Helper()
	e, err := envelope.Parse(env)
	if err != nil {
		tb.Fatal(err)
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(e.Data, &data); err != nil {
		tb.Fatal(err)
	}
	return e, data
}

// marker is the decoded form of an encrypted-value marker.
type marker struct {
	Enc string `json:"$enc"`
	CT  string `json:"ct"`
}

func markerOf(tb testing.TB, raw json.RawMessage) marker {
	tb.Helper()
	var m marker
	if err := json.Unmarshal(raw, &m); err != nil || m.CT == "" {
		tb.Fatalf("not a marker: %s", raw)
	}
	return m
}

// ---- the test DTO ----

type Profile struct {
	ID       string             `json:"id" share:"*" validate:"required"`
	Name     string             `json:"name" share:"financial-service,analytics-service" sensitive:"random"`
	SSN      string             `json:"ssn" share:"financial-service" sensitive:"deterministic" validate:"required,len=9,numeric"`
	Region   string             `json:"region" share:"analytics-service"`
	Address  Address            `json:"address" share:"financial-service"`
	Accounts []Acct             `json:"accounts" share:"*" validate:"dive"`
	Manager  *Person            `json:"manager" share:"financial-service"`
	Backup   *Person            `json:"backup,omitempty" share:"*" sensitive:"random"`
	Limits   map[string]float64 `json:"limits" share:"financial-service"`
	Secrets  map[string]string  `json:"secrets" share:"financial-service" sensitive:"random"`
	Joined   time.Time          `json:"joined" share:"*"`
	Birthday *time.Time         `json:"birthday" share:"financial-service" sensitive:"deterministic"`
	Tags     []string           `json:"tags" share:"analytics-service"`
	Raw      []byte             `json:"raw" share:"financial-service" sensitive:"random"`
	Ledger   map[int]*Acct      `json:"ledger" share:"financial-service"`
	Internal string             `json:"internal"`
}

type Address struct {
	Street string `json:"street" share:"financial-service" sensitive:"random"`
	City   string `json:"city" share:"*"`
	Geo    string `json:"geo"`
}

type Acct struct {
	IBAN    string   `json:"iban" share:"financial-service" sensitive:"deterministic" validate:"required"`
	Balance float64  `json:"balance" share:"*"`
	Kind    string   `json:"kind" share:"analytics-service"`
	Owners  []Person `json:"owners" share:"financial-service"`
}

type Person struct {
	Name  string `json:"name" share:"*"`
	Email string `json:"email" share:"financial-service" sensitive:"random"`
}

func sampleProfile() Profile {
	bday := time.Date(1990, 5, 17, 0, 0, 0, 0, time.UTC)
	return Profile{
		ID: "p-1", Name: "Grace Hopper", SSN: "123456789", Region: "eu-west",
		Address: Address{Street: "1 Compiler Way", City: "Arlington", Geo: "38.88,-77.10"},
		Accounts: []Acct{
			{IBAN: "DE89370400440532013000", Balance: 1234.5, Kind: "checking",
				Owners: []Person{{Name: "Grace", Email: "grace@example.com"}}},
			{IBAN: "FR1420041010050500013M02606", Balance: -3.25e-7, Kind: "savings"},
		},
		Manager:  &Person{Name: "Howard", Email: "howard@example.com"},
		Backup:   &Person{Name: "Jean", Email: "jean@example.com"},
		Limits:   map[string]float64{"daily": 500, "monthly": 1e4, "a/b~c": 1},
		Secrets:  map[string]string{"pin": "0000", "<html>": "&"},
		Joined:   time.Date(2026, 1, 2, 3, 4, 5, 6000, time.FixedZone("X", 3600)),
		Birthday: &bday,
		Tags:     []string{"vip", "beta"},
		Raw:      []byte{0, 1, 2, 0xfe, 0xff},
		Ledger:   map[int]*Acct{7: {IBAN: "GB33BUKB20201555555555", Balance: 7}, -1: nil},
		Internal: "never leaves",
	}
}

// wantFor is what recipient must get from p: exactly the fields shared with
// it, written by hand from the tags (not computed with package schema).
func wantFor(p Profile, recipient string) Profile {
	var w Profile
	w.ID, w.Joined = p.ID, p.Joined
	w.Name = p.Name
	switch recipient {
	case financial:
		w.SSN = p.SSN
		w.Address = Address{Street: p.Address.Street, City: p.Address.City}
		for _, a := range p.Accounts {
			w.Accounts = append(w.Accounts, Acct{IBAN: a.IBAN, Balance: a.Balance, Owners: a.Owners})
		}
		w.Manager = p.Manager
		if p.Backup != nil {
			w.Backup = &Person{Name: p.Backup.Name, Email: p.Backup.Email}
		}
		w.Limits, w.Secrets, w.Birthday, w.Raw = p.Limits, p.Secrets, p.Birthday, p.Raw
		if p.Ledger != nil {
			w.Ledger = map[int]*Acct{}
			for k, a := range p.Ledger {
				if a == nil {
					w.Ledger[k] = nil
					continue
				}
				w.Ledger[k] = &Acct{IBAN: a.IBAN, Balance: a.Balance, Owners: a.Owners}
			}
		}
	case analytics:
		w.Region, w.Tags = p.Region, p.Tags
		for _, a := range p.Accounts {
			w.Accounts = append(w.Accounts, Acct{Balance: a.Balance, Kind: a.Kind})
		}
		if p.Backup != nil {
			w.Backup = &Person{Name: p.Backup.Name}
		}
	}
	if p.Accounts != nil && w.Accounts == nil {
		w.Accounts = []Acct{}
	}
	return w
}
