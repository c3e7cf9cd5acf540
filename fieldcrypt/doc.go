// Package fieldcrypt is the marshaller services call: [Codec.Seal] turns an
// annotated struct into an envelope for one recipient service, and
// [Codec.Open] turns an envelope back into the same struct type, validated.
// It rests on package schema (which fields go to whom, clear or encrypted)
// and package envelope (the wire format and its keys).
//
// # Sealing
//
// [New] takes a [Config]: this service's name, the [Recipient] keys of the
// services it seals for (a public HPKE keyset by default, or an AEAD key,
// plus each one's deterministic keyset), and the keys it opens with.
// Seal validates the whole value with go-playground/validator, then writes
// the recipient's projection of it as JSON, byte for byte what
// encoding/json would write for the filtered value (invalid UTF-8 in a
// clear string becomes the escape \ufffd whatever the Go version, where
// Go 1.27's encoding/json writes the character itself), with every
// sensitive value encrypted in place, and seals the result in an envelope.
//
// # Opening
//
// Open authenticates the whole envelope first, checks that its type name is
// the destination's, then reads the data strictly into a fresh value: only
// members shared with this service, each at most once, sensitive ones as
// markers of the right mode decrypted at their exact place, nothing else.
// Then it checks the validate tags of the fields this service received (a
// `required` field it is not sent does not fail), and only then replaces
// *dst. On any error dst is unchanged. [Codec.OpenFrom] also requires the
// sender the transport authenticated.
//
// With the default validator, a type whose validate tags are all among
// required, omitempty, len, min, max, numeric and email, on fields of a
// basic kind, is checked without running validator; validator still runs,
// and answers, whenever that check refuses a value. The answer is
// validator's either way.
//
// # Keys
//
// Keysets are Tink keysets in Tink's JSON format. Secret ones are stored
// encrypted under a master key (a key-encryption tink.AEAD, typically in a
// KMS) with [WriteKeyset] and read with [ReadKeyset]; public ones, which
// senders hold, with [WritePublicKeyset] and [ReadPublicKeyset]. Cleartext
// secret keysets are read and written only by package
// fieldcrypt/insecurekeyset, for tests and development.
//
// Rotation is Tink's: the primary key of a keyset seals, every enabled key
// opens, and an envelope or field under a disabled key is refused with an
// *envelope.KeyRetiredError (errors.Is(err, envelope.ErrKeyRetired)).
// Rotate a recipient's HPKE keyset and deterministic keyset by adding a new
// primary, distributing it, and disabling the old key once nothing sealed
// under it is still to be opened.
//
// # Errors
//
// Every refusal of an envelope matches envelope.ErrCannotOpen and never
// says which field or byte failed. Programming errors are typed: a
// *schema.TagError (wrapped) for a type whose annotations are wrong,
// [*InvalidValueError], [ErrUnknownRecipient], [ErrNoIdentity].
// [*ValidationError] names field paths and failed tags, never values (map
// keys and indices are elided). [*MismatchError] reports an authentic
// envelope of another type or sender. No error carries plaintext or keys.
//
// # Security caveats
//
// Sender authenticity: with an HPKE recipient, anyone who holds this
// service's public keyset can seal an envelope with any sender name. Use
// OpenFrom with the caller the transport verified, or compare the header's
// Sender yourself.
//
// Deterministic fields leak equality: equal values at the same place give
// equal ciphertexts in every message to the same recipient. Clear fields
// are readable by anyone on the path (they are only integrity-protected).
//
// Plaintext hygiene: the codec wipes its own buffers of sensitive
// plaintext after use, but Go strings cannot be wiped; values live in the
// structs you pass and get back.
//
// Values with pointer cycles are not supported: the validator, which runs
// first, recurses without bound on them. Values nested deeper than
// [Config.MaxDepth] are refused when sealing and when opening.
//
// Strictness has a cost in evolution: a recipient refuses members it does
// not know, so a sender must not share a new field with a recipient before
// the recipient's type has it.
//
// # Logging
//
// This package adds no methods to your types, so fmt and log/slog print a
// tagged value whole, sensitive fields included. Log [Redact](v) instead:
// with every fmt verb, String, slog (LogValue) and encoding/json it shows
// only the fields shared with some service in the clear; sensitive fields,
// and fields shared with no service (which no tag can mark sensitive), read
// [RedactedText].
package fieldcrypt
