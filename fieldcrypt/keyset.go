package fieldcrypt

import (
	"errors"
	"fmt"
	"io"

	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// Keysets on disk use Tink's JSON keyset format, so that Tinkey and every
// Tink implementation read them: an EncryptedKeyset (keyset.Write) for
// secret keysets, a plain Keyset without secrets for public ones. The
// encryption uses the KEK with empty associated data, as keyset.Write does.

// ReadKeyset reads a keyset encrypted under kek (a master key, typically
// KMS-backed) in Tink's JSON format.
func ReadKeyset(r io.Reader, kek tink.AEAD) (*keyset.Handle, error) {
	if kek == nil {
		return nil, errors.New("fieldcrypt: ReadKeyset needs a key-encryption AEAD")
	}
	h, err := keyset.Read(keyset.NewJSONReader(r), kek)
	if err != nil {
		return nil, fmt.Errorf("fieldcrypt: reading encrypted keyset: %w", err)
	}
	return h, nil
}

// WriteKeyset writes h encrypted under kek in Tink's JSON format.
func WriteKeyset(w io.Writer, h *keyset.Handle, kek tink.AEAD) error {
	if kek == nil {
		return errors.New("fieldcrypt: WriteKeyset needs a key-encryption AEAD")
	}
	if err := h.Write(keyset.NewJSONWriter(w), kek); err != nil {
		return fmt.Errorf("fieldcrypt: writing encrypted keyset: %w", err)
	}
	return nil
}

// ReadPublicKeyset reads a keyset that holds no secret key material (a
// recipient's public HPKE keyset) in Tink's JSON format. A keyset with
// secrets is refused: those are read with [ReadKeyset].
func ReadPublicKeyset(r io.Reader) (*keyset.Handle, error) {
	h, err := keyset.ReadWithNoSecrets(keyset.NewJSONReader(r))
	if err != nil {
		return nil, fmt.Errorf("fieldcrypt: reading public keyset: %w", err)
	}
	return h, nil
}

// WritePublicKeyset writes a keyset without secrets (such as
// private.Public()) in Tink's JSON format. A keyset with secrets is
// refused: those are written with [WriteKeyset].
func WritePublicKeyset(w io.Writer, h *keyset.Handle) error {
	if err := h.WriteWithNoSecrets(keyset.NewJSONWriter(w)); err != nil {
		return fmt.Errorf("fieldcrypt: writing public keyset: %w", err)
	}
	return nil
}
