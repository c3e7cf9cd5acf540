// Package insecurekeyset reads and writes Tink keysets IN CLEARTEXT, secret
// keys included, for tests, fixtures and local development only.
//
// Never use it in production: whoever reads the file has the keys. Keysets
// that protect real data are stored encrypted under a master key with
// fieldcrypt.WriteKeyset and read with fieldcrypt.ReadKeyset. Its alarming
// name is deliberate, like Tink's insecurecleartextkeyset on which it
// rests, so that a review notices every import.
//
// The format is Tink's JSON keyset format.
package insecurekeyset
