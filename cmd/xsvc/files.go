package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/lifenavigator/crossservice/envelope"
	"github.com/lifenavigator/crossservice/fieldcrypt"
	"github.com/lifenavigator/crossservice/fieldcrypt/insecurekeyset"
	"github.com/lifenavigator/crossservice/transport"
)

// envMasterKey names the variable that may hold the master key.
const envMasterKey = "XSVC_MASTER_KEY"

// maxInput bounds what is read from a keyset, schema or document file.
const maxInput = 64 << 20

// readInput reads path ("" or "-": standard input), at most maxInput bytes.
func readInput(e *env, path, what string) ([]byte, error) {
	var r io.Reader = e.stdin
	name := "standard input"
	if path != "" && path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fileError(err, what, path)
		}
		defer f.Close()
		r, name = f, path
	}
	data, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return nil, fail(fmt.Sprintf("reading %s %s: %v", what, name, err), "check the file")
	}
	if len(data) > maxInput {
		return nil, fail(fmt.Sprintf("%s %s is larger than %d bytes", what, name, maxInput), "split it")
	}
	return data, nil
}

func fileError(err error, what, path string) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fail(fmt.Sprintf("%s %s does not exist", what, path), "check the path")
	case errors.Is(err, fs.ErrPermission):
		return fail(fmt.Sprintf("%s %s: permission denied", what, path), "check the file's owner and mode")
	}
	return fail(fmt.Sprintf("%s %s: %v", what, path, err), "check the path")
}

// writeOutput writes data to path atomically (temporary file in the same
// directory, fsync, then rename), mode 0600. An existing file is kept
// unless force: the new file is then linked in place, which fails if the
// name exists, so that nothing is ever overwritten by accident even in a
// race. path "" or "-" is standard output.
func writeOutput(e *env, path string, data []byte, force bool, what string) error {
	if path == "" || path == "-" {
		_, err := e.stdout.Write(data)
		return err
	}
	return writeFileAtomic(path, data, force, what)
}

func writeFileAtomic(path string, data []byte, force bool, what string) error {
	if !force {
		if _, err := os.Lstat(path); err == nil {
			return existsError(path, what)
		}
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".xsvc-tmp-*")
	if err != nil {
		return fileError(err, "directory of "+what, dir)
	}
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		return fail("setting mode 0600 on "+tmpName+": "+err.Error(), "check the file system")
	}
	if _, err := tmp.Write(data); err != nil {
		return fail("writing "+path+": "+err.Error(), "check free space")
	}
	if err := tmp.Sync(); err != nil {
		return fail("syncing "+path+": "+err.Error(), "check the file system")
	}
	if err := tmp.Close(); err != nil {
		return fail("writing "+path+": "+err.Error(), "check free space")
	}
	if force {
		err = os.Rename(tmpName, path)
	} else {
		err = os.Link(tmpName, path)
		if err == nil {
			os.Remove(tmpName)
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return existsError(path, what)
		}
		return fail("writing "+path+": "+err.Error(), "check the directory")
	}
	ok = true
	syncDir(dir)
	return nil
}

func existsError(path, what string) error {
	return fail(fmt.Sprintf("%s %s already exists", what, path), "use --force to overwrite it, or choose another name")
}

// syncDir makes a rename durable. Errors are ignored: not every file
// system supports it, and the data itself is already synced.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// checkPrivate refuses a secret file that group or others may read or
// write, as transport.LoadKeyFile does.
func checkPrivate(path, what string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return fileError(err, what, path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return fail(fmt.Sprintf("%s %s has mode %04o: group or others can read it", what, path, st.Mode().Perm()),
			"run chmod 600 "+path)
	}
	return nil
}

// keyFlags are the flags every command that reads or writes secret keys
// has.
type keyFlags struct {
	masterKeyFile string
	insecure      bool
}

func (k *keyFlags) register(fsFlags interface {
	StringVar(*string, string, string, string)
	BoolVar(*bool, string, bool, string)
}) {
	fsFlags.StringVar(&k.masterKeyFile, "master-key-file", "", "master key: a Tink AEAD keyset (JSON, cleartext, mode 0600); else $"+envMasterKey)
	fsFlags.BoolVar(&k.insecure, "insecure-cleartext", false, "read and write secret keys in cleartext (tests and development only)")
}

// masterKey returns the key-encryption AEAD from --master-key-file or
// XSVC_MASTER_KEY.
func (k *keyFlags) masterKey(e *env) (tink.AEAD, error) {
	var data []byte
	var source string
	switch v, ok := e.lookup(envMasterKey); {
	case k.masterKeyFile != "":
		if err := checkPrivate(k.masterKeyFile, "master key file"); err != nil {
			return nil, err
		}
		b, err := readInput(e, k.masterKeyFile, "master key file")
		if err != nil {
			return nil, err
		}
		data, source = b, k.masterKeyFile
	case ok && strings.TrimSpace(v) != "":
		v = strings.TrimSpace(v)
		if strings.HasPrefix(v, "{") {
			data = []byte(v)
		} else {
			b, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				return nil, fail(envMasterKey+" is neither a JSON keyset nor standard base64 of one",
					"export "+envMasterKey+"=\"$(cat master.json)\"")
			}
			data = b
		}
		source = "$" + envMasterKey
	default:
		return nil, fail("no master key",
			"give --master-key-file FILE or set "+envMasterKey+"; make one with xsvc key generate --type aead --insecure-cleartext --out master.json")
	}
	h, err := insecurekeyset.Read(bytes.NewReader(data))
	if err != nil {
		return nil, fail("the master key in "+source+" is not a Tink keyset in JSON",
			"make one with xsvc key generate --type aead --insecure-cleartext --out master.json")
	}
	a, err := aead.New(h)
	if err != nil {
		return nil, fail("the master key in "+source+" is not an AEAD keyset", "make one with xsvc key generate --type aead --insecure-cleartext")
	}
	return a, nil
}

// Keyset kinds, from the type URL of their keys.
const (
	kindAEAD       = "aead"
	kindDet        = "deterministic"
	kindHPKE       = "hpke"
	kindHPKEPublic = "hpke-public"
	kindHMAC       = "hmac"
)

var typeURLKinds = map[string]string{
	"type.googleapis.com/google.crypto.tink.AesGcmKey":      kindAEAD,
	"type.googleapis.com/google.crypto.tink.AesSivKey":      kindDet,
	"type.googleapis.com/google.crypto.tink.HpkePrivateKey": kindHPKE,
	"type.googleapis.com/google.crypto.tink.HpkePublicKey":  kindHPKEPublic,
}

// keyFile is a key file as read: a Tink keyset or HMAC signing keys.
type keyFile struct {
	path      string
	kind      string // one of the kinds above, or "other"
	encrypted bool   // stored under the master key
	public    bool   // holds no secret (a public keyset)
	handle    *keyset.Handle
	entries   []transport.KeyEntry // kind hmac
	kek       tink.AEAD            // the master key it was read with, if any
}

// fileFormat tells the formats apart by their top-level members.
func fileFormat(data []byte) string {
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return ""
	}
	switch {
	case top["encryptedKeyset"] != nil:
		return "tink-encrypted"
	case top["encrypted_keys"] != nil:
		return "hmac-encrypted"
	case top["keys"] != nil && top["version"] != nil:
		return "hmac"
	case top["key"] != nil:
		return "tink"
	}
	return ""
}

// readKeyFile reads any key file: an encrypted one with the master key, a
// public keyset as it is, a cleartext secret one only with
// --insecure-cleartext (or allowPlainHMAC for plain signing-key files,
// which the library itself loads).
func (k *keyFlags) readKeyFile(e *env, path, what string, allowPlainHMAC bool) (*keyFile, error) {
	data, err := readInput(e, path, what)
	if err != nil {
		return nil, err
	}
	kf := &keyFile{path: path}
	switch fileFormat(data) {
	case "tink-encrypted":
		kek, err := k.masterKey(e)
		if err != nil {
			return nil, err
		}
		h, err := fieldcrypt.ReadKeyset(bytes.NewReader(data), kek)
		if err != nil {
			return nil, fail("cannot decrypt "+what+" "+path+" with the master key",
				"wrong --master-key-file or "+envMasterKey+", or the file was altered")
		}
		kf.handle, kf.encrypted, kf.kek = h, true, kek
	case "tink":
		if h, err := fieldcrypt.ReadPublicKeyset(bytes.NewReader(data)); err == nil {
			kf.handle, kf.public = h, true
			break
		}
		if !k.insecure {
			return nil, fail(what+" "+path+" holds secret keys in cleartext",
				"pass --insecure-cleartext to use it (development only), or re-encrypt it under a master key")
		}
		h, err := insecurekeyset.Read(bytes.NewReader(data))
		if err != nil {
			return nil, fail(what+" "+path+" is not a valid Tink keyset", "check the file")
		}
		kf.handle = h
	case "hmac-encrypted":
		kek, err := k.masterKey(e)
		if err != nil {
			return nil, err
		}
		entries, err := transport.ReadEncryptedKeyFile(bytes.NewReader(data), kek)
		switch {
		case errors.Is(err, transport.ErrKeyFileDecrypt):
			return nil, fail("cannot decrypt "+what+" "+path+" with the master key",
				"wrong --master-key-file or "+envMasterKey+", or the file was altered")
		case err != nil:
			return nil, fail(what+" "+path+": "+err.Error(), "check the file")
		}
		kf.kind, kf.entries, kf.encrypted, kf.kek = kindHMAC, entries, true, kek
		return kf, nil
	case "hmac":
		if !k.insecure && !allowPlainHMAC {
			return nil, fail(what+" "+path+" holds signing keys in cleartext",
				"pass --insecure-cleartext to use it (development only), or re-encrypt it under a master key")
		}
		if err := checkPrivate(path, what); err != nil {
			return nil, err
		}
		entries, err := transport.ParseKeyFile(data)
		if err != nil {
			return nil, fail(what+" "+path+": "+err.Error(), "check the file")
		}
		kf.kind, kf.entries = kindHMAC, entries
		return kf, nil
	default:
		return nil, fail(what+" "+path+" is not a key file xsvc knows",
			"expected a Tink keyset (JSON, encrypted or not) or a signing-key file")
	}
	kf.kind = keysetKind(kf.handle)
	return kf, nil
}

// keysetKind is the kind of a keyset's keys, "other" when they are mixed
// or unknown.
func keysetKind(h *keyset.Handle) string {
	kind := ""
	for _, ki := range h.KeysetInfo().GetKeyInfo() {
		k, ok := typeURLKinds[ki.GetTypeUrl()]
		if !ok || (kind != "" && k != kind) {
			return "other"
		}
		kind = k
	}
	return kind
}

// write writes kf back to path in the protection it had: encrypted under
// its master key, or cleartext when it was read with --insecure-cleartext.
func (kf *keyFile) write(path string, force bool) error {
	var buf bytes.Buffer
	switch {
	case kf.kind == kindHMAC && kf.encrypted:
		if err := transport.WriteEncryptedKeyFile(&buf, kf.entries, kf.kek); err != nil {
			return fail("encrypting the signing keys: "+err.Error(), "check the master key")
		}
	case kf.kind == kindHMAC:
		b, err := transport.MarshalKeyFile(kf.entries)
		if err != nil {
			return fail(err.Error(), "check the keys")
		}
		buf.Write(b)
	case kf.public:
		if err := fieldcrypt.WritePublicKeyset(&buf, kf.handle); err != nil {
			return fail(err.Error(), "")
		}
	case kf.encrypted:
		if err := fieldcrypt.WriteKeyset(&buf, kf.handle, kf.kek); err != nil {
			return fail("encrypting the keyset: "+err.Error(), "check the master key")
		}
	default:
		if err := insecurekeyset.Write(&buf, kf.handle); err != nil {
			return fail(err.Error(), "")
		}
	}
	defer clear(buf.Bytes())
	return writeFileAtomic(path, buf.Bytes(), force, "key file")
}

func lstat(path string) (os.FileInfo, error) { return os.Lstat(path) }

// ownKeys are this service's keys, to open what is addressed to it and
// (rewrap) to wrap for itself under its current primary.
type ownKeys struct {
	identity  envelope.Identity
	recipient envelope.Recipient
	kind      string
}

// identity reads this service's keyset (private HPKE or AEAD) and, when
// detPath is set, its deterministic keyset.
func identity(e *env, kf *keyFlags, keysPath, detPath string) (*ownKeys, *keyset.Handle, error) {
	k, err := kf.readKeyFile(e, keysPath, "keyset", false)
	if err != nil {
		return nil, nil, err
	}
	own := &ownKeys{kind: k.kind}
	switch k.kind {
	case kindHPKE:
		if own.identity, err = envelope.NewHPKEIdentity(k.handle); err != nil {
			break
		}
		pub, perr := k.handle.Public()
		if perr != nil {
			err = perr
			break
		}
		own.recipient, err = envelope.NewHPKERecipient(pub)
	case kindAEAD:
		if own.identity, err = envelope.NewAEADKeysetIdentity(k.handle); err != nil {
			break
		}
		own.recipient, err = envelope.NewAEADKeysetRecipient(k.handle)
	case kindHPKEPublic:
		return nil, nil, fail(keysPath+" is a public keyset", "opening needs this service's private HPKE keyset")
	default:
		return nil, nil, fail(fmt.Sprintf("%s is a %s key file, not an HPKE or AEAD keyset", keysPath, k.kind),
			"give this service's private HPKE keyset (or AEAD keyset)")
	}
	if err != nil {
		return nil, nil, fail(keysPath+": "+oneLine(err.Error()), "HPKE keysets must be X25519/HKDF-SHA256/AES-256-GCM with the TINK prefix")
	}
	if detPath == "" {
		return own, nil, nil
	}
	d, err := kf.readKeyFile(e, detPath, "deterministic keyset", false)
	if err != nil {
		return nil, nil, err
	}
	if d.kind != kindDet {
		return nil, nil, fail(fmt.Sprintf("%s is a %s keyset, not a deterministic one", detPath, d.kind), "xsvc key generate --type deterministic")
	}
	return own, d.handle, nil
}
