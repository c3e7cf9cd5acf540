package envelope_test

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/daead"
	"github.com/tink-crypto/tink-go/v2/hybrid"
	"github.com/tink-crypto/tink-go/v2/keyset"
	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"

	"github.com/lifenavigator/crossservice/envelope"
)

// rotation holds one keyset through a rotation: key 1, then key 2 as the
// primary, then key 1 disabled.
type rotation struct {
	m          *keyset.Manager
	old, new   uint32
	oldHandle  *keyset.Handle // only the old key
	bothHandle *keyset.Handle // both enabled, new primary
	retired    *keyset.Handle // old key disabled
}

func rotate(t *testing.T, tmpl *tinkpb.KeyTemplate) *rotation {
	t.Helper()
	r := &rotation{m: keyset.NewManager()}
	var err error
	r.old, err = r.m.Add(tmpl)
	require.NoError(t, err)
	require.NoError(t, r.m.SetPrimary(r.old))
	r.oldHandle, err = r.m.Handle()
	require.NoError(t, err)
	r.new, err = r.m.Add(tmpl)
	require.NoError(t, err)
	require.NoError(t, r.m.SetPrimary(r.new))
	r.bothHandle, err = r.m.Handle()
	require.NoError(t, err)
	require.NoError(t, r.m.Disable(r.old))
	r.retired, err = r.m.Handle()
	require.NoError(t, err)
	return r
}

func public(t *testing.T, h *keyset.Handle) *keyset.Handle {
	t.Helper()
	p, err := h.Public()
	require.NoError(t, err)
	return p
}

func TestRotationHPKE(t *testing.T) {
	r := rotate(t, hybrid.DHKEM_X25519_HKDF_SHA256_HKDF_SHA256_AES_256_GCM_Key_Template())
	det := sharedKeys().daead
	oldEnv := sealDoc(t, hpkeSealer(t, &keys{hpkePub: public(t, r.oldHandle), daead: det}, nil))
	newEnv := sealDoc(t, hpkeSealer(t, &keys{hpkePub: public(t, r.bothHandle), daead: det}, nil))
	require.Equal(t, fmtID(r.old), mustParse(t, oldEnv).Header.Key.KeyID)
	require.Equal(t, fmtID(r.new), mustParse(t, newEnv).Header.Key.KeyID)

	// Old key still enabled: both open.
	o := hpkeOpener(t, &keys{hpkePriv: r.bothHandle, daead: det}, nil)
	openDoc(t, o, oldEnv)
	openDoc(t, o, newEnv)

	// Old key disabled: old envelopes are refused as retired, new ones open.
	o = hpkeOpener(t, &keys{hpkePriv: r.retired, daead: det}, nil)
	_, err := o.Open(oldEnv)
	requireKeyRetired(t, err, fmtID(r.old))
	openDoc(t, o, newEnv)

	// Same with a cache that holds nothing yet and with a custom identity
	// wrapper (no status pre-check): Unwrap itself refuses.
	id, err := envelope.NewHPKEIdentity(r.retired)
	require.NoError(t, err)
	o2, err := envelope.NewOpener(envelope.OpenerConfig{Self: recipient, Identity: &countingIdentity{id: id}})
	require.NoError(t, err)
	_, err = o2.Open(oldEnv)
	requireKeyRetired(t, err, fmtID(r.old))

	// Deleted altogether: unknown, not retired.
	require.NoError(t, r.m.Delete(r.old))
	deleted, err := r.m.Handle()
	require.NoError(t, err)
	o = hpkeOpener(t, &keys{hpkePriv: deleted, daead: det}, nil)
	_, err = o.Open(oldEnv)
	requireCannotOpen(t, err)
}

func TestRotationAEADKeyset(t *testing.T) {
	r := rotate(t, aead.AES256GCMKeyTemplate())
	det := sharedKeys().daead
	seal := func(h *keyset.Handle) []byte {
		rc, err := envelope.NewAEADKeysetRecipient(h)
		require.NoError(t, err)
		s, err := envelope.NewSealer(envelope.SealerConfig{Sender: sender, Recipient: recipient, To: rc, Deterministic: det})
		require.NoError(t, err)
		return sealDoc(t, s)
	}
	opener := func(h *keyset.Handle) *envelope.Opener {
		id, err := envelope.NewAEADKeysetIdentity(h)
		require.NoError(t, err)
		o, err := envelope.NewOpener(envelope.OpenerConfig{Self: recipient, Identity: id, Deterministic: det})
		require.NoError(t, err)
		return o
	}
	oldEnv, newEnv := seal(r.oldHandle), seal(r.bothHandle)
	require.Equal(t, fmtID(r.old), mustParse(t, oldEnv).Header.Key.KeyID)
	o := opener(r.bothHandle)
	openDoc(t, o, oldEnv)
	openDoc(t, o, newEnv)
	o = opener(r.retired)
	_, err := o.Open(oldEnv)
	requireKeyRetired(t, err, fmtID(r.old))
	openDoc(t, o, newEnv)

	// A kid naming the new key on an envelope wrapped with the old one.
	swapped := reheader(t, oldEnv, func(h *envelope.Header) { h.Key.KeyID = fmtID(r.new) })
	_, err = opener(r.bothHandle).Open(swapped)
	requireCannotOpen(t, err)
}

func TestRotationDeterministic(t *testing.T) {
	r := rotate(t, daead.AESSIVKeyTemplate())
	k := sharedKeys()
	seal := func(det *keyset.Handle) []byte {
		return sealDoc(t, hpkeSealer(t, &keys{hpkePub: k.hpkePub, daead: det}, nil))
	}
	oldEnv, newEnv := seal(r.oldHandle), seal(r.bothHandle)
	o := hpkeOpener(t, &keys{hpkePriv: k.hpkePriv, daead: r.bothHandle}, nil)
	openDoc(t, o, oldEnv)
	openDoc(t, o, newEnv)

	o = hpkeOpener(t, &keys{hpkePriv: k.hpkePriv, daead: r.retired}, nil)
	openDoc(t, o, newEnv)
	op, err := o.Open(oldEnv) // the envelope itself is fine …
	require.NoError(t, err)
	_, err = op.OpenField(rawAt(t, op.Data, "/owner"), envelope.Random, []byte("/owner"), []byte("/owner"))
	require.NoError(t, err)
	// … its deterministic field names a retired key.
	_, err = op.OpenField(rawAt(t, op.Data, "/ssn"), envelope.Deterministic, []byte("/ssn"), []byte("/ssn"))
	requireKeyRetired(t, err, fmtID(r.old))

	// The sealer always uses the primary key.
	a := mustMarkerCT(t, rawAt(t, mustParse(t, newEnv).Data, "/ssn"))
	require.Equal(t, byte(1), a[0])
	require.Equal(t, r.new, uint32(a[1])<<24|uint32(a[2])<<16|uint32(a[3])<<8|uint32(a[4]))
}

func fmtID(id uint32) string { return strconv.FormatUint(uint64(id), 10) }
