package transport

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
)

// KEK is a key-encryption key: an AEAD such as a Tink tink.AEAD (the
// primitive of a Tink AEAD keyset, or a KMS key), which satisfies it. This
// package does not depend on Tink.
type KEK interface {
	Encrypt(plaintext, associatedData []byte) ([]byte, error)
	Decrypt(ciphertext, associatedData []byte) ([]byte, error)
}

// EncryptedKeyFileAD is the associated data under which an encrypted key
// file's content is encrypted: it binds the ciphertext to its purpose, so
// that a master key's ciphertext made for anything else (a Tink keyset, say)
// is not accepted as a key file, nor the reverse.
const EncryptedKeyFileAD = "xsvc/v1/key-file"

// ErrKeyFileDecrypt: an encrypted key file does not decrypt under the
// master key given (the wrong master key, or a file altered or made for
// another purpose).
var ErrKeyFileDecrypt = errors.New("transport: key file does not decrypt under this master key")

// encryptedKeyFile is the encrypted key file (SPEC.md part 2, section
// 11.3.1): {"version": 1, "encrypted_keys": "<standard base64>"}.
type encryptedKeyFile struct {
	Version       *int    `json:"version"`
	EncryptedKeys *string `json:"encrypted_keys"`
}

// MarshalKeyFile writes entries in the JSON key file format (section 11.3),
// every secret as secret_base64 so that any bytes survive. The result holds
// the secrets in the clear: write it to a 0600 file, or encrypt it with
// [WriteEncryptedKeyFile].
func MarshalKeyFile(entries []KeyEntry) ([]byte, error) {
	if len(entries) == 0 {
		return nil, fmt.Errorf("transport: key file: no keys: %w", ErrInvalidConfig)
	}
	kf := struct {
		Version int           `json:"version"`
		Keys    []keyFileItem `json:"keys"`
	}{Version: 1}
	for i := range entries {
		e := &entries[i]
		if err := e.check(); err != nil {
			return nil, fmt.Errorf("transport: key file: keys[%d]: %w", i, err)
		}
		b64 := base64.StdEncoding.EncodeToString(e.Key.s.secret)
		kf.Keys = append(kf.Keys, keyFileItem{Caller: e.Caller, Target: e.Target, ID: e.Key.s.id,
			SecretBase64: &b64, Retired: e.Retired})
	}
	out, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("transport: key file: %w", err)
	}
	// Check what was written the way a reader will (duplicates...).
	if _, err := ParseKeyFile(out); err != nil {
		clear(out)
		return nil, err
	}
	return append(out, '\n'), nil
}

// WriteEncryptedKeyFile writes entries as an encrypted key file: the key
// file of [MarshalKeyFile] encrypted with kek (a master key, typically a Tink
// AEAD keyset or a KMS key) under the associated data [EncryptedKeyFileAD].
func WriteEncryptedKeyFile(w io.Writer, entries []KeyEntry, kek KEK) error {
	if kek == nil {
		return fmt.Errorf("transport: WriteEncryptedKeyFile needs a key-encryption AEAD: %w", ErrInvalidConfig)
	}
	plain, err := MarshalKeyFile(entries)
	if err != nil {
		return err
	}
	ct, err := kek.Encrypt(plain, []byte(EncryptedKeyFileAD))
	clear(plain)
	if err != nil {
		return fmt.Errorf("transport: encrypting key file: %w", errors.Join(ErrInvalidConfig, err))
	}
	v, s := 1, base64.StdEncoding.EncodeToString(ct)
	out, err := json.MarshalIndent(encryptedKeyFile{Version: &v, EncryptedKeys: &s}, "", "  ")
	if err != nil {
		return fmt.Errorf("transport: key file: %w", err)
	}
	if _, err := w.Write(append(out, '\n')); err != nil {
		return fmt.Errorf("transport: writing key file: %w", err)
	}
	return nil
}

// ReadEncryptedKeyFile reads an encrypted key file (at most
// [MaxKeyFileSize] bytes), decrypts it with kek and parses the key file
// inside with [ParseKeyFile]. A file that does not decrypt (the wrong master
// key, altered bytes) is [ErrKeyFileDecrypt]; a malformed one
// [ErrInvalidConfig].
func ReadEncryptedKeyFile(r io.Reader, kek KEK) ([]KeyEntry, error) {
	if kek == nil {
		return nil, fmt.Errorf("transport: ReadEncryptedKeyFile needs a key-encryption AEAD: %w", ErrInvalidConfig)
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("transport: key file: %w", err)
	}
	if len(data) > MaxKeyFileSize {
		return nil, fmt.Errorf("transport: key file larger than %d bytes: %w", MaxKeyFileSize, ErrInvalidConfig)
	}
	ct, err := parseEncryptedKeyFile(data)
	if err != nil {
		return nil, err
	}
	plain, err := kek.Decrypt(ct, []byte(EncryptedKeyFileAD))
	if err != nil {
		return nil, ErrKeyFileDecrypt
	}
	defer clear(plain)
	return ParseKeyFile(plain)
}

// LoadEncryptedKeyFile is [ReadEncryptedKeyFile] on a file, which like a
// plain key file ([LoadKeyFile]) must not be readable or writable by group
// or others ([ErrKeyFileInsecure]).
func LoadEncryptedKeyFile(path string, kek KEK) ([]KeyEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("transport: key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("transport: key file: %w", err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("transport: key file %s has mode %04o, want 0600 or stricter: %w",
			path, st.Mode().Perm(), ErrKeyFileInsecure)
	}
	return ReadEncryptedKeyFile(f, kek)
}

// IsEncryptedKeyFile reports whether data looks like an encrypted key file
// (a JSON object with an "encrypted_keys" member) rather than a plain one,
// without decrypting or fully validating it.
func IsEncryptedKeyFile(data []byte) bool {
	var probe map[string]json.RawMessage
	if json.Unmarshal(data, &probe) != nil {
		return false
	}
	_, ok := probe["encrypted_keys"]
	return ok
}

func parseEncryptedKeyFile(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var ef encryptedKeyFile
	if err := dec.Decode(&ef); err != nil {
		return nil, fmt.Errorf("transport: encrypted key file: malformed JSON: %w", ErrInvalidConfig)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("transport: encrypted key file: data after the object: %w", ErrInvalidConfig)
	}
	if ef.Version == nil || *ef.Version != 1 {
		return nil, fmt.Errorf("transport: encrypted key file: version must be 1: %w", ErrInvalidConfig)
	}
	if ef.EncryptedKeys == nil {
		return nil, fmt.Errorf("transport: encrypted key file: encrypted_keys missing: %w", ErrInvalidConfig)
	}
	ct, err := base64.StdEncoding.Strict().DecodeString(*ef.EncryptedKeys)
	if err != nil || len(ct) == 0 {
		return nil, fmt.Errorf("transport: encrypted key file: encrypted_keys is not standard base64: %w", ErrInvalidConfig)
	}
	return ct, nil
}
