package envelope

import (
	"fmt"

	"github.com/tink-crypto/tink-go/v2/keyset"
	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"
)

// keyStatuses is a keyset's key ids and statuses, read from KeysetInfo (which
// holds no key material). It decides, before any decryption, whether a key id
// is unknown (cannot open) or retired (a *KeyRetiredError).
type keyStatuses map[uint32]tinkpb.KeyStatusType

func statusesOf(h *keyset.Handle) keyStatuses {
	info := h.KeysetInfo()
	m := make(keyStatuses, len(info.GetKeyInfo()))
	for _, k := range info.GetKeyInfo() {
		m[k.GetKeyId()] = k.GetStatus()
	}
	return m
}

// check resolves an id as it appears on the wire (kid is its text).
// kid is the id as written, or "" to format id (only when it is retired).
func (m keyStatuses) check(id uint32, kid string) error {
	switch m[id] {
	case tinkpb.KeyStatusType_ENABLED:
		return nil
	case tinkpb.KeyStatusType_DISABLED, tinkpb.KeyStatusType_DESTROYED:
		if kid == "" {
			kid = formatTinkKeyID(id)
		}
		return &KeyRetiredError{KeyID: kid}
	default: // unknown id
		return ErrCannotOpen
	}
}

// checkKID parses a decimal Tink "kid" and resolves it.
func (m keyStatuses) checkKID(kid string) (uint32, error) {
	id, ok := parseTinkKeyID(kid)
	if !ok {
		return 0, ErrCannotOpen
	}
	return id, m.check(id, kid)
}

// perKey builds one primitive per ENABLED key of h, each from a keyset that
// holds that key alone, so a key id named on the wire is the only key ever
// tried: no fallback through the other keys of the keyset.
func perKey[P any](h *keyset.Handle, newPrimitive func(*keyset.Handle) (P, error)) (map[uint32]P, error) {
	m := make(map[uint32]P, h.Len())
	for i := range h.Len() {
		e, err := h.Entry(i)
		if err != nil {
			return nil, err
		}
		if e.KeyStatus() != keyset.Enabled {
			continue
		}
		km := keyset.NewManager()
		id, err := km.AddKey(e.Key())
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", e.KeyID(), err)
		}
		if err := km.SetPrimary(id); err != nil {
			return nil, fmt.Errorf("key %d: %w", e.KeyID(), err)
		}
		single, err := km.Handle()
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", e.KeyID(), err)
		}
		p, err := newPrimitive(single)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", e.KeyID(), err)
		}
		m[e.KeyID()] = p
	}
	return m, nil
}

// primaryID returns the id of h's primary key.
func primaryID(h *keyset.Handle) (uint32, error) {
	p, err := h.Primary()
	if err != nil {
		return 0, err
	}
	return p.KeyID(), nil
}
