// Package envelope implements the crossservice sealed-message format: a JSON
// document whose sensitive values are encrypted in place, with a header naming
// the message, its sender and recipient, and a data key wrapped for the
// recipient with Tink. The exact bytes are specified in SPEC.md (the envelope
// part); this package knows nothing of Go struct tags, which belong to
// package fieldcrypt.
//
// # Sealing
//
// A [Sealer] seals for one recipient, configured with a [Recipient]:
// [NewHPKERecipient] (the default: the recipient's public HPKE keyset, so the
// sender cannot read back what it sealed), [NewAEADKeysetRecipient] (a Tink
// AEAD keyset) or [NewAEADRecipient] (any tink.AEAD, such as a KMS key).
// [Sealer.Begin] starts a [Message]; [Message.AppendField] replaces each
// sensitive value by a marker, {"$enc":"random","ct":"…"} or
// {"$enc":"deterministic","ct":"…"}; [Message.Finish] adds the tag, which
// covers the exact bytes of the header and of the whole data object, clear
// fields included.
//
// # Opening
//
// An [Opener] holds the recipient's [Identity] ([NewHPKEIdentity],
// [NewAEADKeysetIdentity], [NewAEADIdentity]). [Opener.Open] parses, checks
// that the envelope is addressed to this service and that its key is known
// and enabled, unwraps the data key (or finds it in a bounded cache), and
// verifies the tag; [Opened.OpenField] then decrypts one marker at a time.
// Every refusal matches [ErrCannotOpen] and says nothing about what failed;
// malformed input is also a [*ParseError], a disabled or destroyed key a
// [*KeyRetiredError] (which matches [ErrKeyRetired]). [Parse] and
// [Envelope.Marshal] expose the wire form.
//
// # Security caveats
//
// Sender authenticity: with an HPKE recipient anyone holding the recipient's
// public keyset can seal an envelope with any "snd". A verified envelope
// proves integrity and confidentiality, not origin. The caller MUST compare
// [Opened].Header.Sender with the caller the transport authenticated (the
// request signature) and refuse a mismatch; fieldcrypt's server-side helper
// does. With an AEAD recipient every holder of the key can seal, so the
// sender is as trusted as the set of key holders.
//
// Deterministic fields leak equality: equal plaintexts at the same schema
// place of the same type give equal ciphertexts in every message to the
// recipient, forever (until its deterministic key rotates). Use [Deterministic]
// only for values that must be joined or looked up, never for low-entropy
// values whose equality alone is sensitive.
//
// Key reuse: by default a [Sealer] reuses one wrapped data key for up to 1000
// messages or 5 minutes ([Reuse]; at most [MaxReuseMessages] and
// [MaxReuseAge]), and an [Opener] caches unwrapped keys ([Cache]). This saves
// an HPKE operation or a KMS call per message, at the price that one leaked
// data key exposes every message sealed under it. Set Reuse.Disabled for a
// fresh key per message. A cache hit skips the [Identity]'s Unwrap: a
// custom identity's per-message policy (revocation, a rule per sender)
// belongs in [KeyChecker], which the opener calls before the cache.
//
// Replay: the envelope has a unique id and an issued-at time but this package
// keeps no record of them; replay protection belongs to the transport.
//
// Keys never appear in errors, logs or String results: callers hold Tink
// keyset handles, and the data key exists only inside AEAD values.
package envelope
