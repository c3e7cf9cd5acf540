package envelope

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tink-crypto/tink-go/v2/daead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"
	"github.com/tink-crypto/tink-go/v2/tink"
)

const aesSIVTypeURL = "type.googleapis.com/google.crypto.tink.AesSivKey"

// detKeys is a recipient's deterministic (AES-SIV) keyset: the primary
// primitive for sealing, one primitive per enabled key for opening.
type detKeys struct {
	primary tink.DeterministicAEAD
	status  keyStatuses
	byID    map[uint32]tink.DeterministicAEAD
}

// newDetKeys checks that every key of h is AES-SIV with the TINK prefix (the
// ciphertext must name its key) and builds the primitives. forOpen selects
// which side's primitives are built.
func newDetKeys(h *keyset.Handle, forOpen bool) (*detKeys, error) {
	if h.Len() == 0 {
		return nil, errors.New("empty keyset")
	}
	for _, k := range h.KeysetInfo().GetKeyInfo() {
		if k.GetTypeUrl() != aesSIVTypeURL || k.GetOutputPrefixType() != tinkpb.OutputPrefixType_TINK {
			return nil, fmt.Errorf("key %d is not AES-SIV with the TINK prefix", k.GetKeyId())
		}
	}
	d := &detKeys{status: statusesOf(h)}
	var err error
	if forOpen {
		d.byID, err = perKey(h, daead.New)
	} else {
		d.primary, err = daead.New(h)
	}
	if err != nil {
		return nil, err
	}
	return d, nil
}

// open decrypts a deterministic ciphertext: its Tink prefix names the key,
// whose status is checked before anything is decrypted.
func (d *detKeys) open(ct, ad []byte) ([]byte, error) {
	if len(ct) < 5 || ct[0] != tinkPrefixByte {
		return nil, ErrCannotOpen
	}
	id := binary.BigEndian.Uint32(ct[1:5])
	if err := d.status.check(id, ""); err != nil {
		return nil, err
	}
	p, ok := d.byID[id]
	if !ok {
		return nil, ErrCannotOpen
	}
	pt, err := p.DecryptDeterministically(ct, ad)
	if err != nil {
		return nil, ErrCannotOpen
	}
	return pt, nil
}
