package envelope

import "errors"

// ErrCannotOpen is the one error every refused envelope or field matches
// (errors.Is). Its text never says which byte, member, key or check failed, so
// it can be returned to an unauthenticated caller and logged safely.
var ErrCannotOpen = errors.New("envelope: cannot open")

// ErrKeyRetired is matched (errors.Is) by a [*KeyRetiredError]: the envelope or
// field names a key that the recipient still knows but has disabled or
// destroyed. It is an operational signal (re-seal or re-wrap old data), not an
// attack indicator.
var ErrKeyRetired = errors.New("envelope: key retired")

// KeyRetiredError reports that the key named by an envelope's "kid", or by a
// deterministic field's Tink prefix, is disabled or destroyed in the
// recipient's keyset. It matches both [ErrCannotOpen] and [ErrKeyRetired].
type KeyRetiredError struct {
	// KeyID is the key id as it appears on the wire (the decimal Tink key id
	// for keysets). It is an identifier, never key material.
	KeyID string
}

func (e *KeyRetiredError) Error() string {
	return "envelope: cannot open: key " + e.KeyID + " is retired"
}

// Is makes a *KeyRetiredError match [ErrCannotOpen] and [ErrKeyRetired].
func (e *KeyRetiredError) Is(target error) bool {
	return target == ErrCannotOpen || target == ErrKeyRetired
}

// ParseError reports malformed input: an envelope or a field marker that does
// not follow the wire format. Reason is a short fixed phrase; it never quotes
// the input. A *ParseError matches [ErrCannotOpen].
type ParseError struct {
	Reason string
}

func (e *ParseError) Error() string { return "envelope: malformed: " + e.Reason }

// Is makes a *ParseError match [ErrCannotOpen].
func (e *ParseError) Is(target error) bool { return target == ErrCannotOpen }

func parseErr(reason string) error { return &ParseError{Reason: reason} }

// errNotConstructed is returned by methods called on a zero Sealer, Message,
// Opener or Opened instead of panicking.
var errNotConstructed = errors.New("envelope: use NewSealer, Sealer.Begin, NewOpener or Opener.Open to get this value")

// openError is a refusal whose cause came from code this package does not
// control (a custom Identity, a KMS-backed tink.AEAD). Its text is exactly
// ErrCannotOpen's; the cause stays reachable through errors.Is/As so that an
// operator can tell a KMS outage (context.DeadlineExceeded, …) from a forgery,
// without the cause's text reaching a log line by accident.
type openError struct{ cause error }

func (e *openError) Error() string        { return ErrCannotOpen.Error() }
func (e *openError) Is(target error) bool { return target == ErrCannotOpen }
func (e *openError) Unwrap() error        { return e.cause }

// cannotOpen maps an error from an Identity to what Open returns: refusals of
// this package pass through unchanged (so a *KeyRetiredError stays one), any
// other error becomes an openError.
func cannotOpen(err error) error {
	if errors.Is(err, ErrCannotOpen) {
		return err
	}
	return &openError{cause: err}
}
