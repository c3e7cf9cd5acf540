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
//
// An [Opener] calls Unwrap only when its cache of unwrapped data keys
// misses (see [Cache]): a check made only in Unwrap does not run for
// messages whose data key is cached. Checks that must run for every
// message belong in [KeyChecker].
type Identity interface {
	Unwrap(k KeyInfo, wrapContext []byte) ([]byte, error)
}

// KeyChecker is an optional interface of an [Identity]: a check of the key
// an envelope names, and of its sender, made without unwrapping. When the
// Identity of an [Opener] implements it, [Opener.Open] calls CheckKey for
// every envelope addressed to it, before it looks in its cache of
// unwrapped data keys (and so before Unwrap on a miss). This is where a
// policy that must hold for every message belongs, such as a revoked key
// id, a rule per sender or a key's own authorisation: a cache hit skips
// Unwrap.
//
// k is the envelope's "key" and sender its "snd", as parsed: not yet
// authenticated (the tag is verified after the data key is found), so
// CheckKey may refuse on them but must not take them for proven. Errors
// are returned by [Opener.Open] as Unwrap's are: one matching
// [ErrCannotOpen] (such as a [*KeyRetiredError]) as it is, any other as
// [ErrCannotOpen] with the original as its cause. CheckKey must be safe for
// concurrent use and must not modify or retain k.Wrapped.
//
// The identities of this package implement KeyChecker with their key
// status check (unknown id, disabled or destroyed key). An Identity that
// wraps one of them must forward CheckKey, or the wrapped identity's check
// runs only when the cache misses.
type KeyChecker interface {
	CheckKey(k KeyInfo, sender string) error
}

// validKeyInfo checks what a Recipient returned, so that a custom Recipient
// cannot make the sealer write an envelope the parser would refuse.
func validKeyInfo(k *KeyInfo) bool {
	return (k.Alg == AlgHPKE || k.Alg == AlgAEAD) && validKeyID(k.KeyID) && len(k.Wrapped) > 0
}
