package transport

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"hash"
	"log/slog"
	"sync"

	"github.com/lifenavigator/crossservice/internal/names"
)

// MinKeyBytes is the shortest key material accepted anywhere.
const MinKeyBytes = 32

// Key is one HMAC key: an id (sent as X-Key-ID in v1) and secret bytes that
// never leave the value. String, GoString, Format and LogValue print the id
// and "REDACTED"; there is no accessor for the secret. The zero Key is
// invalid. Keys are immutable and safe for concurrent use; copies share
// their state (including a pool of keyed HMACs, so that signing and
// verifying do not re-derive the HMAC pads per request).
type Key struct {
	s *keyState
}

type keyState struct {
	id     string
	secret []byte
	macs   sync.Pool // hash.Hash keyed with secret
}

// NewKey returns a key. id: 1..64 bytes of [A-Za-z0-9._:-]. secret: at
// least [MinKeyBytes] bytes, copied. For keys that are strings (the original
// system's API keys, environment variables), the secret is the UTF-8 bytes of
// the string, without any decoding: []byte(s).
//
// Length is not entropy: use 32 random bytes or more (for example the 64
// characters of `openssl rand -hex 32`).
func NewKey(id string, secret []byte) (Key, error) {
	if !validKeyID(id) {
		return Key{}, fmt.Errorf("transport: key id not 1..64 bytes of [A-Za-z0-9._:-]: %w", ErrInvalidKey)
	}
	if len(secret) < MinKeyBytes {
		// The id is left out: a secret pasted into the id field must not be
		// echoed by the error that its short "secret" causes.
		return Key{}, fmt.Errorf("transport: key secret is %d bytes, at least %d required: %w", len(secret), MinKeyBytes, ErrKeyTooShort)
	}
	s := &keyState{id: id, secret: append([]byte(nil), secret...)}
	s.macs.New = func() any { return hmac.New(sha256.New, s.secret) }
	return Key{s: s}, nil
}

// ID returns the key id ("" for the zero Key).
func (k Key) ID() string {
	if k.s == nil {
		return ""
	}
	return k.s.id
}

// IsZero reports whether k is the zero (invalid) Key.
func (k Key) IsZero() bool { return k.s == nil }

func (k Key) String() string {
	if k.s == nil {
		return "transport.Key{}"
	}
	return fmt.Sprintf("transport.Key{ID: %q, Secret: REDACTED}", k.s.id)
}

// GoString keeps %#v from printing the secret.
func (k Key) GoString() string { return k.String() }

// Format keeps every fmt verb (%x, %d, %v, %+v...) from printing the secret.
func (k Key) Format(f fmt.State, _ rune) { fmt.Fprint(f, k.String()) }

// LogValue keeps slog from printing the secret.
func (k Key) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", k.ID()), slog.String("secret", "REDACTED"))
}

// MarshalText keeps encoding/json and friends from printing the secret.
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

func (s *keyState) getMAC() hash.Hash {
	m := s.macs.Get().(hash.Hash)
	m.Reset()
	return m
}

func (s *keyState) putMAC(m hash.Hash) { s.macs.Put(m) }

// KeyEntry places a key in a keyring: which caller signs with it and, when
// Target is set, for which target only.
type KeyEntry struct {
	Caller string // the signing service (X-Service-Name); required
	Target string // "": the key is valid for any target; else only for that one
	Key    Key
	// Retired keys are refused with their own log reason (key_retired),
	// distinct from unknown keys. Keep a retired key listed for a while after
	// a rotation so that the log tells a stale client from an attacker.
	Retired bool
}

func (e *KeyEntry) check() error {
	if !names.Valid(e.Caller) {
		return fmt.Errorf("transport: key entry: caller %q is not a service name: %w", e.Caller, ErrInvalidConfig)
	}
	if e.Target != "" && !names.Valid(e.Target) {
		return fmt.Errorf("transport: key entry: target %q is not a service name: %w", e.Target, ErrInvalidConfig)
	}
	if e.Key.s == nil {
		return fmt.Errorf("transport: key entry for %q: zero Key: %w", e.Caller, ErrInvalidConfig)
	}
	return nil
}

// SigningKey picks the key a client uses to sign from caller to target:
// the one non-retired entry for (caller, target), else the one non-retired
// entry for (caller, any target). More than one candidate at the chosen level
// is an error: a client signs with exactly one key, rotation is done by
// replacing it (see SPEC.md part 2, "Key rotation").
func SigningKey(entries []KeyEntry, caller, target string) (Key, error) {
	for _, scope := range [...]string{target, ""} {
		var found []Key
		for i := range entries {
			e := &entries[i]
			if e.Caller == caller && e.Target == scope && !e.Retired && e.Key.s != nil {
				found = append(found, e.Key)
			}
		}
		switch len(found) {
		case 0:
			continue
		case 1:
			return found[0], nil
		default:
			return Key{}, fmt.Errorf("transport: %d active keys for %s -> %s, a signer needs exactly one: %w",
				len(found), caller, target, ErrInvalidConfig)
		}
	}
	return Key{}, fmt.Errorf("transport: no active key for %s -> %s: %w", caller, target, ErrInvalidConfig)
}
