package envelope

// Recipient wraps a message's data key for one recipient (the sending side).
//
// Wrap must bind the wrapped key to wrapContext (as HPKE info or AEAD
// associated data) and return a KeyInfo whose Alg is [AlgHPKE] or [AlgAEAD],
// whose KeyID is 1..64 bytes of [A-Za-z0-9._:-], and whose Wrapped is not
// empty. dataKey must not be retained.
type Recipient interface {
	Wrap(dataKey, wrapContext []byte) (KeyInfo, error)
}

// Identity unwraps a data key (the receiving side): it is the recipient's
// private or secret key.
//
// Unwrap returns the 32-byte data key, or an error. Errors that match
// [ErrCannotOpen] (such as a [*KeyRetiredError]) are returned by
// [Opener.Open] as they are; any other error is returned as [ErrCannotOpen]
// with the original as its cause, reachable with errors.Is and errors.As
// but never part of the text.
type Identity interface {
	Unwrap(k KeyInfo, wrapContext []byte) ([]byte, error)
}

// keyChecker is implemented by this package's identities: it resolves a key
// id without unwrapping, so that a retired or unknown key is refused before
// the opener even looks in its cache of unwrapped keys.
type keyChecker interface {
	checkKey(k *KeyInfo) error
}

// validKeyInfo checks what a Recipient returned, so that a custom Recipient
// cannot make the sealer write an envelope the parser would refuse.
func validKeyInfo(k *KeyInfo) bool {
	return (k.Alg == AlgHPKE || k.Alg == AlgAEAD) && validKeyID(k.KeyID) && len(k.Wrapped) > 0
}
