package insecurekeyset

import (
	"fmt"
	"io"

	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/keyset"
)

// Read reads a cleartext keyset in Tink's JSON format. For tests and
// development only.
func Read(r io.Reader) (*keyset.Handle, error) {
	h, err := insecurecleartextkeyset.Read(keyset.NewJSONReader(r))
	if err != nil {
		return nil, fmt.Errorf("insecurekeyset: %w", err)
	}
	return h, nil
}

// Write writes h in cleartext, secret keys included, in Tink's JSON format.
// For tests and development only.
func Write(w io.Writer, h *keyset.Handle) error {
	if err := insecurecleartextkeyset.Write(h, keyset.NewJSONWriter(w)); err != nil {
		return fmt.Errorf("insecurekeyset: %w", err)
	}
	return nil
}
