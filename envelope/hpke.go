package envelope

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tink-crypto/tink-go/v2/hybrid"
	"github.com/tink-crypto/tink-go/v2/hybrid/hpke"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// HPKERecipient wraps data keys with Tink HPKE
// (DHKEM_X25519_HKDF_SHA256_HKDF_SHA256_AES_256_GCM, TINK prefix) for the
// primary key of a recipient's PUBLIC keyset. A sender holding it cannot read
// what it sealed; see the package doc for what this means for sender
// authenticity.
type HPKERecipient struct {
	kid string
	enc tink.HybridEncrypt
}

// HPKEIdentity unwraps data keys wrapped by an [HPKERecipient], with the
// recipient's private keyset.
type HPKEIdentity struct {
	status keyStatuses
	dec    map[uint32]tink.HybridDecrypt
}

var (
	_ Recipient  = (*HPKERecipient)(nil)
	_ Identity   = (*HPKEIdentity)(nil)
	_ KeyChecker = (*HPKEIdentity)(nil)
)

// NewHPKERecipient returns a Recipient for the public keyset h (the output of
// [keyset.Handle.Public] on the recipient's keyset). It refuses a handle that
// holds private key material, so that a service never ships a recipient's
// private key by mistake, and any key that is not HPKE with the parameters
// the format fixes.
func NewHPKERecipient(public *keyset.Handle) (Recipient, error) {
	if public == nil {
		return nil, errors.New("envelope: NewHPKERecipient: nil keyset handle")
	}
	for i := range public.Len() {
		e, err := public.Entry(i)
		if err != nil {
			return nil, fmt.Errorf("envelope: NewHPKERecipient: %w", err)
		}
		switch k := e.Key().(type) {
		case *hpke.PublicKey:
			if err := checkHPKEParams(k.Parameters(), e.KeyID()); err != nil {
				return nil, fmt.Errorf("envelope: NewHPKERecipient: %w", err)
			}
		case *hpke.PrivateKey:
			return nil, errors.New("envelope: NewHPKERecipient: the keyset holds private key material; pass handle.Public()")
		default:
			return nil, fmt.Errorf("envelope: NewHPKERecipient: key %d is not an HPKE key", e.KeyID())
		}
	}
	id, err := primaryID(public)
	if err != nil {
		return nil, fmt.Errorf("envelope: NewHPKERecipient: %w", err)
	}
	enc, err := hybrid.NewHybridEncrypt(public)
	if err != nil {
		return nil, fmt.Errorf("envelope: NewHPKERecipient: %w", err)
	}
	return &HPKERecipient{kid: formatTinkKeyID(id), enc: enc}, nil
}

// Wrap encrypts dataKey with HPKE for the primary key, with wrapContext as
// HPKE info. The result carries Tink's prefix 0x01 || key id.
func (r *HPKERecipient) Wrap(dataKey, wrapContext []byte) (KeyInfo, error) {
	wk, err := r.enc.Encrypt(dataKey, wrapContext)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("envelope: HPKE wrap: %w", err)
	}
	return KeyInfo{Alg: AlgHPKE, KeyID: r.kid, Wrapped: wk}, nil
}

// String names the recipient key; it never shows key material.
func (r *HPKERecipient) String() string { return "envelope.HPKERecipient(kid=" + r.kid + ")" }

// NewHPKEIdentity returns an Identity for the private keyset h. Every key must
// be an HPKE private key with the format's parameters. Enabled keys open;
// disabled or destroyed keys give a [*KeyRetiredError]; ids not in h give
// [ErrCannotOpen].
func NewHPKEIdentity(private *keyset.Handle) (Identity, error) {
	if private == nil {
		return nil, errors.New("envelope: NewHPKEIdentity: nil keyset handle")
	}
	for i := range private.Len() {
		e, err := private.Entry(i)
		if err != nil {
			return nil, fmt.Errorf("envelope: NewHPKEIdentity: %w", err)
		}
		k, ok := e.Key().(*hpke.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("envelope: NewHPKEIdentity: key %d is not an HPKE private key", e.KeyID())
		}
		if err := checkHPKEParams(k.Parameters(), e.KeyID()); err != nil {
			return nil, fmt.Errorf("envelope: NewHPKEIdentity: %w", err)
		}
	}
	dec, err := perKey(private, hybrid.NewHybridDecrypt)
	if err != nil {
		return nil, fmt.Errorf("envelope: NewHPKEIdentity: %w", err)
	}
	return &HPKEIdentity{status: statusesOf(private), dec: dec}, nil
}

// CheckKey implements [KeyChecker]: it resolves k's key id without
// unwrapping, so that an [Opener] refuses an unknown or retired key even
// when it has the data key cached. The sender is not checked.
func (id *HPKEIdentity) CheckKey(k KeyInfo, sender string) error { return id.checkKey(&k) }

func (id *HPKEIdentity) checkKey(k *KeyInfo) error {
	if k.Alg != AlgHPKE {
		return ErrCannotOpen
	}
	_, err := id.status.checkKID(k.KeyID)
	return err
}

// Unwrap checks the key id's status, then decrypts k.Wrapped with that key
// alone. Every failure is [ErrCannotOpen] or a [*KeyRetiredError], without
// Tink's error text.
func (id *HPKEIdentity) Unwrap(k KeyInfo, wrapContext []byte) ([]byte, error) {
	if k.Alg != AlgHPKE {
		return nil, ErrCannotOpen
	}
	kid, err := id.status.checkKID(k.KeyID)
	if err != nil {
		return nil, err
	}
	// The Tink prefix must name the same key as the header.
	if len(k.Wrapped) < 5 || k.Wrapped[0] != tinkPrefixByte || binary.BigEndian.Uint32(k.Wrapped[1:5]) != kid {
		return nil, ErrCannotOpen
	}
	dec, ok := id.dec[kid]
	if !ok {
		return nil, ErrCannotOpen
	}
	dk, err := dec.Decrypt(k.Wrapped, wrapContext)
	if err != nil {
		return nil, ErrCannotOpen
	}
	return dk, nil
}

// String shows the number of keys only.
func (id *HPKEIdentity) String() string {
	return fmt.Sprintf("envelope.HPKEIdentity(%d keys)", len(id.status))
}

// tinkPrefixByte starts the 5-byte output prefix of keys with the TINK
// output prefix type: 0x01 || big-endian uint32 key id.
const tinkPrefixByte = 0x01

func checkHPKEParams(p any, id uint32) error {
	params, ok := p.(*hpke.Parameters)
	if !ok ||
		params.KEMID() != hpke.DHKEM_X25519_HKDF_SHA256 ||
		params.KDFID() != hpke.HKDFSHA256 ||
		params.AEADID() != hpke.AES256GCM ||
		params.Variant() != hpke.VariantTink {
		return fmt.Errorf("key %d is not DHKEM_X25519_HKDF_SHA256_HKDF_SHA256_AES_256_GCM with the TINK prefix", id)
	}
	return nil
}
