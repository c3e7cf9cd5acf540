package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/daead"
	"github.com/tink-crypto/tink-go/v2/hybrid"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/lifenavigator/crossservice/envelope"
	"github.com/lifenavigator/crossservice/fieldcrypt"
	"github.com/lifenavigator/crossservice/fieldcrypt/insecurekeyset"
	"github.com/lifenavigator/crossservice/transport/devcert"
)

// Files under the demo directory:
//
//	certs/                    devcert: ca.pem, <service>.pem, <service>-key.pem
//	master-key.json           the master key (KEK), cleartext: in production a KMS key
//	keys/<svc>.hpke.json      the service's HPKE private keyset, encrypted under the master key
//	keys/<svc>.hpke.pub.json  its public keyset, handed to senders
//	keys/financial-service.det.json  financial-service's AES-SIV keyset, shared with the frontend
func setup(dir string) (demoSecrets, error) {
	var s demoSecrets
	if _, err := devcert.Write(filepath.Join(dir, "certs"),
		[]string{frontend, financial, analytics, marketing, nodeClient, legacyGW}, devcert.Options{}); err != nil {
		return s, err
	}

	master, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		return s, err
	}
	var buf bytes.Buffer
	if err := insecurekeyset.Write(&buf, master); err != nil {
		return s, err
	}
	if err := os.WriteFile(filepath.Join(dir, "master-key.json"), buf.Bytes(), 0o600); err != nil {
		return s, err
	}
	kek, err := aead.New(master)
	if err != nil {
		return s, err
	}

	keys := filepath.Join(dir, "keys")
	if err := os.Mkdir(keys, 0o700); err != nil {
		return s, err
	}
	for _, svc := range []string{frontend, financial, analytics} {
		priv, err := keyset.NewHandle(hybrid.DHKEM_X25519_HKDF_SHA256_HKDF_SHA256_AES_256_GCM_Key_Template())
		if err != nil {
			return s, err
		}
		if err := writeKeyset(filepath.Join(keys, svc+".hpke.json"), priv, kek); err != nil {
			return s, err
		}
		pub, err := priv.Public()
		if err != nil {
			return s, err
		}
		buf.Reset()
		if err := fieldcrypt.WritePublicKeyset(&buf, pub); err != nil {
			return s, err
		}
		if err := os.WriteFile(filepath.Join(keys, svc+".hpke.pub.json"), buf.Bytes(), 0o644); err != nil {
			return s, err
		}
	}
	det, err := keyset.NewHandle(daead.AESSIVKeyTemplate())
	if err != nil {
		return s, err
	}
	if err := writeKeyset(filepath.Join(keys, financial+".det.json"), det, kek); err != nil {
		return s, err
	}

	for _, p := range []*string{&s.frontendToFinancial, &s.frontendToAnalytics, &s.marketing, &s.node, &s.legacy} {
		if *p, err = randomKey(); err != nil {
			return s, err
		}
	}
	return s, nil
}

func writeKeyset(path string, h *keyset.Handle, kek tink.AEAD) error {
	var buf bytes.Buffer
	if err := fieldcrypt.WriteKeyset(&buf, h, kek); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o600)
}

// keyring reads what one service needs from the demo directory.
type keyring struct {
	dir string
	kek tink.AEAD
}

func openKeyring(dir string) (*keyring, error) {
	f, err := os.Open(filepath.Join(dir, "master-key.json"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	master, err := insecurekeyset.Read(f)
	if err != nil {
		return nil, err
	}
	kek, err := aead.New(master)
	if err != nil {
		return nil, err
	}
	return &keyring{dir: dir, kek: kek}, nil
}

func (k *keyring) private(name string) (*keyset.Handle, error) {
	f, err := os.Open(filepath.Join(k.dir, "keys", name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return fieldcrypt.ReadKeyset(f, k.kek)
}

func (k *keyring) identity(svc string) (envelope.Identity, error) {
	h, err := k.private(svc + ".hpke.json")
	if err != nil {
		return nil, err
	}
	return envelope.NewHPKEIdentity(h)
}

func (k *keyring) recipient(svc string) (envelope.Recipient, error) {
	f, err := os.Open(filepath.Join(k.dir, "keys", svc+".hpke.pub.json"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pub, err := fieldcrypt.ReadPublicKeyset(f)
	if err != nil {
		return nil, fmt.Errorf("public keyset of %s: %w", svc, err)
	}
	return envelope.NewHPKERecipient(pub)
}
