package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/daead"
	"github.com/tink-crypto/tink-go/v2/hybrid"
	"github.com/tink-crypto/tink-go/v2/keyset"
	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"

	"github.com/lifenavigator/crossservice/fieldcrypt"
	"github.com/lifenavigator/crossservice/transport"
)

func init() {
	register("key generate", "create a keyset or a signing-key file", keyGenerate)
	register("key add", "add a key to a keyset or signing-key file (not primary unless --promote)", keyAdd)
	register("key promote", "make a key the primary of a keyset", keyPromote)
	register("key retire", "disable a key of a keyset, or retire a signing key", keyRetire)
	register("key list", "list key ids, status, primary and type (never secrets)", keyList)
	register("key public", "extract the public keyset of an HPKE keyset, for senders", keyPublic)
}

const keyTypes = "aead | deterministic | hpke | hmac"

const keyFilesHelp = `
Types:
  aead           Tink AES-256-GCM (TINK prefix): a master key, or an AEAD recipient
  deterministic  Tink AES-SIV (TINK prefix): sensitive:"deterministic" fields
  hpke           Tink HPKE X25519 / HKDF-SHA256 / AES-256-GCM (TINK prefix): the
                 recipient keyset of envelopes (xsvc key public gives senders its
                 public half)
  hmac           request-signing keys (SPEC.md part 2 section 11.3): 32
                 random bytes each, per caller and optionally per target

Files are written with mode 0600, atomically (temporary file, fsync, rename),
encrypted under the master key (--master-key-file or $XSVC_MASTER_KEY), or in
cleartext with --insecure-cleartext. An existing file is never replaced without
--force. add, promote and retire rewrite the file they read, in the same
protection, unless --out names another file.`

func tinkTemplate(kind string) (*tinkpb.KeyTemplate, bool) {
	switch kind {
	case kindAEAD:
		return aead.AES256GCMKeyTemplate(), true
	case kindDet:
		return daead.AESSIVKeyTemplate(), true
	case kindHPKE:
		return hybrid.DHKEM_X25519_HKDF_SHA256_HKDF_SHA256_AES_256_GCM_Key_Template(), true
	}
	return nil, false
}

// hmacFlags are the flags that place a signing key.
type hmacFlags struct {
	caller, target, id, format string
}

func (h *hmacFlags) register(fs interface {
	StringVar(*string, string, string, string)
}, withFormat bool) {
	fs.StringVar(&h.caller, "caller", "", "hmac: the service that signs with the key (X-Service-Name)")
	fs.StringVar(&h.target, "target", "", "hmac: restrict the key to one target service (default: any target)")
	fs.StringVar(&h.id, "id", "", "hmac: the key id (X-Key-ID; default: the UTC time, such as 2026-05-01T120304)")
	if withFormat {
		fs.StringVar(&h.format, "secret-format", "base64", "hmac: base64 (32 random bytes) or hex (64 hex characters, usable as an environment variable value)")
	}
}

func (h *hmacFlags) newEntry(existing []transport.KeyEntry) (transport.KeyEntry, error) {
	if h.caller == "" {
		return transport.KeyEntry{}, usage("--caller is required for an hmac key", "the service that signs with it")
	}
	id := h.id
	if id == "" {
		id = time.Now().UTC().Format("2006-01-02T150405")
	}
	for _, e := range existing {
		if e.Caller == h.caller && e.Target == h.target && e.Key.ID() == id {
			return transport.KeyEntry{}, fail(fmt.Sprintf("key id %q already exists for %s", id, h.caller), "choose another --id")
		}
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return transport.KeyEntry{}, fail("reading random bytes: "+err.Error(), "")
	}
	defer clear(secret)
	material := secret
	switch h.format {
	case "", "base64":
	case "hex":
		material = []byte(hex.EncodeToString(secret))
		defer clear(material)
	default:
		return transport.KeyEntry{}, usage("--secret-format must be base64 or hex", "")
	}
	k, err := transport.NewKey(id, material)
	if err != nil {
		return transport.KeyEntry{}, usage("invalid key id "+strconv.Quote(id), "1 to 64 of A-Z a-z 0-9 . _ : -")
	}
	e := transport.KeyEntry{Caller: h.caller, Target: h.target, Key: k}
	if _, err := transport.MarshalKeyFile([]transport.KeyEntry{e}); err != nil {
		return transport.KeyEntry{}, usage(err.Error(), "check --caller and --target")
	}
	return e, nil
}

func keyGenerate(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "key generate", "--type TYPE --out FILE [flags]", `
Creates a keyset with one primary key (aead, deterministic, hpke) or a signing-
key file with one key (hmac).

Examples:
  xsvc key generate --type aead --insecure-cleartext --out master.json
  xsvc key generate --type hpke --master-key-file master.json --out financial-hpke.json
  xsvc key generate --type hmac --caller frontend --target financial-api --out keys.json
`+keyFilesHelp)
	var kf keyFlags
	kf.register(fs)
	var hf hmacFlags
	hf.register(fs, true)
	typ := fs.String("type", "", "key type: "+keyTypes)
	out := fs.String("out", "", "file to write (required)")
	force := fs.Bool("force", false, "replace an existing file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := required(fs, "type", "out"); err != nil {
		return err
	}
	file := &keyFile{kind: *typ}
	if !kf.insecure {
		kek, err := kf.masterKey(e)
		if err != nil {
			return err
		}
		file.kek, file.encrypted = kek, true
	}
	var desc string
	if *typ == kindHMAC {
		entry, err := hf.newEntry(nil)
		if err != nil {
			return err
		}
		file.entries = []transport.KeyEntry{entry}
		desc = fmt.Sprintf("hmac signing key %q for caller %s", entry.Key.ID(), entry.Caller)
	} else {
		tmpl, ok := tinkTemplate(*typ)
		if !ok {
			return usage("unknown --type "+strconv.Quote(*typ), "one of "+keyTypes)
		}
		h, err := keyset.NewHandle(tmpl)
		if err != nil {
			return fail("generating the keyset: "+err.Error(), "")
		}
		file.handle = h
		desc = fmt.Sprintf("%s keyset, primary key %d", *typ, h.KeysetInfo().GetPrimaryKeyId())
	}
	if err := file.write(*out, *force); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s: %s, %s\n", *out, desc, protection(file))
	return nil
}

func protection(kf *keyFile) string {
	switch {
	case kf.public:
		return "public (no secrets)"
	case kf.encrypted:
		return "encrypted under the master key"
	}
	return "CLEARTEXT (development only)"
}

// editFlags are the flags of add, promote and retire.
type editFlags struct {
	keyFlags
	file, out string
}

func (ef *editFlags) register(fs interface {
	StringVar(*string, string, string, string)
	BoolVar(*bool, string, bool, string)
}) {
	ef.keyFlags.register(fs)
	fs.StringVar(&ef.file, "file", "", "the keyset or signing-key file (required)")
	fs.StringVar(&ef.file, "keyset", "", "(hidden) the same as --file")
	fs.StringVar(&ef.out, "out", "", "write the result to this new file instead of rewriting --file")
}

func (ef *editFlags) save(e *env, kf *keyFile, force bool) error {
	path, replace := ef.file, true
	if ef.out != "" {
		path, replace = ef.out, force
	}
	if err := kf.write(path, replace); err != nil {
		return err
	}
	return nil
}

func keyAdd(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "key add", "--file FILE [--promote] [flags]", `
Adds a key. To a keyset: a new key of the keyset's type, enabled but not primary
(distribute the keyset, then promote it: a key that opens must reach every
opener before it seals). To a signing-key file: a new active key for --caller
(and --target); signers choose it by key id, the verifier accepts both keys
until the old one is retired (SPEC.md part 2 section 11.1).
`+keyFilesHelp)
	var ef editFlags
	ef.register(fs)
	var hf hmacFlags
	hf.register(fs, true)
	promote := fs.Bool("promote", false, "make the new key the primary at once (keysets)")
	typ := fs.String("type", "", "expected type of the file ("+keyTypes+"); default: whatever it holds")
	force := fs.Bool("force", false, "with --out: replace an existing file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := required(fs, "file"); err != nil {
		return err
	}
	kf, err := ef.readKeyFile(e, ef.file, "key file", false)
	if err != nil {
		return err
	}
	if *typ != "" && *typ != kf.kind {
		return usage(fmt.Sprintf("%s holds a %s keyset, not %s", ef.file, kf.kind, *typ), "drop --type, or give the right file")
	}
	var desc string
	switch {
	case kf.kind == kindHMAC:
		entry, err := hf.newEntry(kf.entries)
		if err != nil {
			return err
		}
		kf.entries = append(kf.entries, entry)
		desc = fmt.Sprintf("added signing key %q for caller %s", entry.Key.ID(), entry.Caller)
	case kf.public:
		return fail(ef.file+" is a public keyset", "add keys to the private keyset, then run xsvc key public again")
	default:
		tmpl, ok := tinkTemplate(kf.kind)
		if !ok {
			return fail("cannot add to a keyset of type "+kf.kind, "xsvc manages aead, deterministic and hpke keysets")
		}
		m := keyset.NewManagerFromHandle(kf.handle)
		id, err := m.Add(tmpl)
		if err != nil {
			return fail("adding a key: "+err.Error(), "")
		}
		desc = fmt.Sprintf("added key %d", id)
		if *promote {
			if err := m.SetPrimary(id); err != nil {
				return fail("promoting key: "+err.Error(), "")
			}
			desc += " as the primary"
		}
		if kf.handle, err = m.Handle(); err != nil {
			return fail(err.Error(), "")
		}
	}
	if err := ef.save(e, kf, *force); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, desc)
	return nil
}

func parseTinkID(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, usage("--id must be a Tink key id (a decimal number)", "see xsvc key list")
	}
	return uint32(v), nil
}

func keyPromote(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "key promote", "--file FILE --id KEYID [flags]", `
Makes an enabled key the primary of a keyset: new envelopes, wrapped keys and
deterministic fields use it; every enabled key still opens.

Signing-key files have no primary: a signer uses the key whose id it is given
(--key-id, or <TARGET>_API_KEY_ID). Rotate them with key add, switch the
signers, then key retire the old key (SPEC.md part 2 section 11.1).
`+keyFilesHelp)
	var ef editFlags
	ef.register(fs)
	id := fs.String("id", "", "the key id to promote (required)")
	force := fs.Bool("force", false, "with --out: replace an existing file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := required(fs, "file", "id"); err != nil {
		return err
	}
	kf, err := ef.readKeyFile(e, ef.file, "key file", false)
	if err != nil {
		return err
	}
	if kf.kind == kindHMAC {
		return usage("signing-key files have no primary key",
			"signers pick a key by id (--key-id, <TARGET>_API_KEY_ID); after switching them, retire the old key with xsvc key retire")
	}
	if kf.public {
		return fail(ef.file+" is a public keyset", "promote in the private keyset, then run xsvc key public again")
	}
	kid, err := parseTinkID(*id)
	if err != nil {
		return err
	}
	m := keyset.NewManagerFromHandle(kf.handle)
	if err := m.SetPrimary(kid); err != nil {
		return fail(fmt.Sprintf("cannot promote key %d: %v", kid, err), "it must exist and be enabled; see xsvc key list")
	}
	if kf.handle, err = m.Handle(); err != nil {
		return fail(err.Error(), "")
	}
	if err := ef.save(e, kf, *force); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "key %d is now the primary\n", kid)
	return nil
}

func keyRetire(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "key retire", "--file FILE --id KEYID [flags]", `
Retires a key. In a keyset the key is disabled: envelopes and fields under it
are refused with "key retired" (run xsvc rewrap first for stored data); the
primary cannot be retired (promote another key first). In a signing-key file the
key is marked retired: the verifier refuses it with its own log reason
(key_retired), which tells a stale client from an attacker.
`+keyFilesHelp)
	var ef editFlags
	ef.register(fs)
	id := fs.String("id", "", "the key id to retire (required)")
	caller := fs.String("caller", "", "hmac: the caller of the key, when several callers use the id")
	force := fs.Bool("force", false, "with --out: replace an existing file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := required(fs, "file", "id"); err != nil {
		return err
	}
	kf, err := ef.readKeyFile(e, ef.file, "key file", false)
	if err != nil {
		return err
	}
	if kf.public {
		return fail(ef.file+" is a public keyset", "retire in the private keyset, then run xsvc key public again")
	}
	var desc string
	if kf.kind == kindHMAC {
		var hits []int
		for i, en := range kf.entries {
			if en.Key.ID() == *id && (*caller == "" || en.Caller == *caller) {
				hits = append(hits, i)
			}
		}
		switch len(hits) {
		case 0:
			return fail(fmt.Sprintf("no signing key with id %q", *id), "see xsvc key list")
		case 1:
		default:
			return usage(fmt.Sprintf("%d signing keys have id %q", len(hits), *id), "name the caller with --caller")
		}
		kf.entries[hits[0]].Retired = true
		desc = fmt.Sprintf("signing key %q of %s retired", *id, kf.entries[hits[0]].Caller)
	} else {
		kid, err := parseTinkID(*id)
		if err != nil {
			return err
		}
		if kf.handle.KeysetInfo().GetPrimaryKeyId() == kid {
			return fail(fmt.Sprintf("key %d is the primary", kid), "promote another key first (xsvc key add --promote, or xsvc key promote)")
		}
		m := keyset.NewManagerFromHandle(kf.handle)
		if err := m.Disable(kid); err != nil {
			return fail(fmt.Sprintf("cannot retire key %d: %v", kid, err), "see xsvc key list")
		}
		if kf.handle, err = m.Handle(); err != nil {
			return fail(err.Error(), "")
		}
		desc = fmt.Sprintf("key %d disabled", kid)
	}
	if err := ef.save(e, kf, *force); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, desc)
	return nil
}

// listedKey is one row of key list (--json prints these).
type listedKey struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Primary bool   `json:"primary"`
	Type    string `json:"type"`
	Caller  string `json:"caller,omitempty"`
	Target  string `json:"target,omitempty"`
}

func keyList(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "key list", "--file FILE [--json] [flags]", `
Lists the keys of a keyset or signing-key file: id, status, primary, type (and
caller and target for signing keys). Never prints key material. For signing
keys, "primary" marks the key a signer picks when given none (the only active
key for its caller and target).
`+keyFilesHelp)
	var kfl keyFlags
	kfl.register(fs)
	file := fs.String("file", "", "the keyset or signing-key file (required)")
	asJSON := fs.Bool("json", false, "print JSON lines instead of a table")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := required(fs, "file"); err != nil {
		return err
	}
	kf, err := kfl.readKeyFile(e, *file, "key file", false)
	if err != nil {
		return err
	}
	var rows []listedKey
	if kf.kind == kindHMAC {
		for _, en := range kf.entries {
			status := "active"
			if en.Retired {
				status = "retired"
			}
			primary := false
			if !en.Retired {
				if k, err := transport.SigningKey(kf.entries, en.Caller, en.Target); err == nil && k.ID() == en.Key.ID() {
					primary = true
				}
			}
			rows = append(rows, listedKey{ID: en.Key.ID(), Status: status, Primary: primary, Type: "hmac-sha256",
				Caller: en.Caller, Target: en.Target})
		}
	} else {
		info := kf.handle.KeysetInfo()
		for _, ki := range info.GetKeyInfo() {
			typ := typeURLKinds[ki.GetTypeUrl()]
			if typ == "" {
				typ = strings.TrimPrefix(ki.GetTypeUrl(), "type.googleapis.com/google.crypto.tink.")
			}
			rows = append(rows, listedKey{
				ID: strconv.FormatUint(uint64(ki.GetKeyId()), 10), Status: strings.ToLower(ki.GetStatus().String()),
				Primary: ki.GetKeyId() == info.GetPrimaryKeyId(),
				Type:    typ + " (" + strings.ToLower(ki.GetOutputPrefixType().String()) + " prefix)",
			})
		}
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	fmt.Fprintf(e.stdout, "%s: %s, %s\n", *file, kf.kind, protection(kf))
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	if kf.kind == kindHMAC {
		fmt.Fprintln(tw, "ID\tSTATUS\tPRIMARY\tTYPE\tCALLER\tTARGET")
	} else {
		fmt.Fprintln(tw, "ID\tSTATUS\tPRIMARY\tTYPE")
	}
	for _, r := range rows {
		p := ""
		if r.Primary {
			p = "*"
		}
		if kf.kind == kindHMAC {
			target := r.Target
			if target == "" {
				target = "(any)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Status, p, r.Type, r.Caller, target)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, r.Status, p, r.Type)
		}
	}
	return tw.Flush()
}

func keyPublic(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "key public", "--in FILE --out FILE [flags]", `
Writes the public half of an HPKE keyset (the recipient's private keyset) for
senders: with it they can seal envelopes for the recipient but not open them.
The output holds no secret; it is still written with mode 0600 and never
replaces a file without --force.
`+keyFilesHelp)
	var kfl keyFlags
	kfl.register(fs)
	in := fs.String("in", "", "the private HPKE keyset (required)")
	out := fs.String("out", "", "the public keyset to write (required; - for standard output)")
	force := fs.Bool("force", false, "replace an existing file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := required(fs, "in", "out"); err != nil {
		return err
	}
	kf, err := kfl.readKeyFile(e, *in, "keyset", false)
	if err != nil {
		return err
	}
	if kf.kind != kindHPKE {
		return fail(fmt.Sprintf("%s is a %s keyset, not a private hpke keyset", *in, kf.kind), "give the recipient's HPKE keyset")
	}
	pub, err := kf.handle.Public()
	if err != nil {
		return fail("extracting the public keyset: "+err.Error(), "")
	}
	pf := &keyFile{kind: kindHPKEPublic, public: true, handle: pub}
	if *out == "-" {
		if err := fieldcrypt.WritePublicKeyset(e.stdout, pub); err != nil {
			return fail(err.Error(), "")
		}
		return nil
	}
	if err := pf.write(*out, *force); err != nil {
		return err
	}
	ids := []string{}
	for _, ki := range pub.KeysetInfo().GetKeyInfo() {
		ids = append(ids, strconv.FormatUint(uint64(ki.GetKeyId()), 10))
	}
	slices.Sort(ids)
	fmt.Fprintf(e.stdout, "wrote %s: public hpke keyset, keys %s, primary %d\n", *out, strings.Join(ids, ", "),
		pub.KeysetInfo().GetPrimaryKeyId())
	return nil
}
