package envelope

import (
	"errors"
	"fmt"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// AEADRecipient wraps data keys with a symmetric tink.AEAD shared with the
// recipient, typically KMS-backed. Anyone who can wrap can also unwrap, so
// with this kind of recipient the sender is as trusted as the key holders.
type AEADRecipient struct {
	kid string
	a   tink.AEAD
}

// AEADIdentity unwraps data keys wrapped by an [AEADRecipient].
type AEADIdentity struct {
	kid string
	a   tink.AEAD
}

// AEADKeysetRecipient wraps data keys with the primary key of a Tink AEAD
// keyset; the header's kid is that key's decimal id.
type AEADKeysetRecipient struct {
	kid string
	a   tink.AEAD
}

// AEADKeysetIdentity unwraps data keys wrapped by an [AEADKeysetRecipient],
// resolving the kid against the keyset's statuses first.
type AEADKeysetIdentity struct {
	status keyStatuses
	a      map[uint32]tink.AEAD
}

var (
	_ Recipient  = (*AEADRecipient)(nil)
	_ Identity   = (*AEADIdentity)(nil)
	_ KeyChecker = (*AEADIdentity)(nil)
	_ Recipient  = (*AEADKeysetRecipient)(nil)
	_ Identity   = (*AEADKeysetIdentity)(nil)
	_ KeyChecker = (*AEADKeysetIdentity)(nil)
)

// NewAEADRecipient returns a Recipient that wraps with a (for example a KMS
// AEAD) and writes keyID as kid. keyID is 1..64 bytes of [A-Za-z0-9._:-]
// and must name the key for the recipient, who configures the same id.
func NewAEADRecipient(keyID string, a tink.AEAD) (Recipient, error) {
	if err := checkAEADArgs(keyID, a); err != nil {
		return nil, fmt.Errorf("envelope: NewAEADRecipient: %w", err)
	}
	return &AEADRecipient{kid: keyID, a: a}, nil
}

// Wrap encrypts dataKey with wrapContext as associated data.
func (r *AEADRecipient) Wrap(dataKey, wrapContext []byte) (KeyInfo, error) {
	wk, err := r.a.Encrypt(dataKey, wrapContext)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("envelope: AEAD wrap: %w", err)
	}
	return KeyInfo{Alg: AlgAEAD, KeyID: r.kid, Wrapped: wk}, nil
}

// String names the key id only.
func (r *AEADRecipient) String() string { return "envelope.AEADRecipient(kid=" + r.kid + ")" }

// NewAEADIdentity returns an Identity that opens envelopes whose kid is keyID
// with a. Any other kid is [ErrCannotOpen].
func NewAEADIdentity(keyID string, a tink.AEAD) (Identity, error) {
	if err := checkAEADArgs(keyID, a); err != nil {
		return nil, fmt.Errorf("envelope: NewAEADIdentity: %w", err)
	}
	return &AEADIdentity{kid: keyID, a: a}, nil
}

// CheckKey implements [KeyChecker]: it resolves k's key id without
// unwrapping, so that an [Opener] refuses an unknown or retired key even
// when it has the data key cached. The sender is not checked.
func (id *AEADIdentity) CheckKey(k KeyInfo, sender string) error { return id.checkKey(&k) }

func (id *AEADIdentity) checkKey(k *KeyInfo) error {
	if k.Alg != AlgAEAD || k.KeyID != id.kid {
		return ErrCannotOpen
	}
	return nil
}

// Unwrap decrypts k.Wrapped. A failure of a is returned as [ErrCannotOpen]
// whose text says nothing more; the cause (a KMS timeout, say) stays
// reachable through errors.Is and errors.As.
func (id *AEADIdentity) Unwrap(k KeyInfo, wrapContext []byte) ([]byte, error) {
	if err := id.checkKey(&k); err != nil {
		return nil, err
	}
	dk, err := id.a.Decrypt(k.Wrapped, wrapContext)
	if err != nil {
		return nil, &openError{cause: err}
	}
	return dk, nil
}

// String names the key id only.
func (id *AEADIdentity) String() string { return "envelope.AEADIdentity(kid=" + id.kid + ")" }

func checkAEADArgs(keyID string, a tink.AEAD) error {
	if !validKeyID(keyID) {
		return errors.New("key id must be 1..64 bytes of [A-Za-z0-9._:-]")
	}
	if a == nil {
		return errors.New("nil AEAD")
	}
	return nil
}

// NewAEADKeysetRecipient returns a Recipient that wraps with the primary key
// of the AEAD keyset h (which may hold KMS envelope keys).
func NewAEADKeysetRecipient(h *keyset.Handle) (Recipient, error) {
	if h == nil {
		return nil, errors.New("envelope: NewAEADKeysetRecipient: nil keyset handle")
	}
	id, err := primaryID(h)
	if err != nil {
		return nil, fmt.Errorf("envelope: NewAEADKeysetRecipient: %w", err)
	}
	a, err := aead.New(h)
	if err != nil {
		return nil, fmt.Errorf("envelope: NewAEADKeysetRecipient: %w", err)
	}
	return &AEADKeysetRecipient{kid: formatTinkKeyID(id), a: a}, nil
}

// Wrap encrypts dataKey with the primary key, wrapContext as associated data.
func (r *AEADKeysetRecipient) Wrap(dataKey, wrapContext []byte) (KeyInfo, error) {
	wk, err := r.a.Encrypt(dataKey, wrapContext)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("envelope: AEAD keyset wrap: %w", err)
	}
	return KeyInfo{Alg: AlgAEAD, KeyID: r.kid, Wrapped: wk}, nil
}

// String names the primary key id only.
func (r *AEADKeysetRecipient) String() string {
	return "envelope.AEADKeysetRecipient(kid=" + r.kid + ")"
}

// NewAEADKeysetIdentity returns an Identity for the AEAD keyset h. Enabled
// keys open; disabled or destroyed keys give a [*KeyRetiredError]; ids not in
// h give [ErrCannotOpen].
func NewAEADKeysetIdentity(h *keyset.Handle) (Identity, error) {
	if h == nil {
		return nil, errors.New("envelope: NewAEADKeysetIdentity: nil keyset handle")
	}
	a, err := perKey(h, aead.New)
	if err != nil {
		return nil, fmt.Errorf("envelope: NewAEADKeysetIdentity: %w", err)
	}
	return &AEADKeysetIdentity{status: statusesOf(h), a: a}, nil
}

// CheckKey implements [KeyChecker]: it resolves k's key id without
// unwrapping, so that an [Opener] refuses an unknown or retired key even
// when it has the data key cached. The sender is not checked.
func (id *AEADKeysetIdentity) CheckKey(k KeyInfo, sender string) error { return id.checkKey(&k) }

func (id *AEADKeysetIdentity) checkKey(k *KeyInfo) error {
	if k.Alg != AlgAEAD {
		return ErrCannotOpen
	}
	_, err := id.status.checkKID(k.KeyID)
	return err
}

// Unwrap checks the key id's status, then decrypts with that key alone.
func (id *AEADKeysetIdentity) Unwrap(k KeyInfo, wrapContext []byte) ([]byte, error) {
	if k.Alg != AlgAEAD {
		return nil, ErrCannotOpen
	}
	kid, err := id.status.checkKID(k.KeyID)
	if err != nil {
		return nil, err
	}
	a, ok := id.a[kid]
	if !ok {
		return nil, ErrCannotOpen
	}
	dk, err := a.Decrypt(k.Wrapped, wrapContext)
	if err != nil {
		// Tink's keyset primitive reports every failure as one opaque error;
		// nothing worth keeping as a cause.
		return nil, ErrCannotOpen
	}
	return dk, nil
}

// String shows the number of keys only.
func (id *AEADKeysetIdentity) String() string {
	return fmt.Sprintf("envelope.AEADKeysetIdentity(%d keys)", len(id.status))
}
