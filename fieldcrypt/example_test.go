package fieldcrypt_test

import (
	"bytes"
	"fmt"

	"github.com/tink-crypto/tink-go/v2/daead"
	"github.com/tink-crypto/tink-go/v2/hybrid"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/lifenavigator/crossservice/envelope"
	"github.com/lifenavigator/crossservice/fieldcrypt"
)

// Account is the DTO of DESIGN.md.
type Account struct {
	ID      string  `json:"id"      share:"financial-service,analytics-service"`
	Owner   string  `json:"owner"   share:"financial-service" sensitive:"random"`
	SSN     string  `json:"ssn"     share:"financial-service" sensitive:"deterministic" validate:"required,len=9,numeric"`
	Balance float64 `json:"balance" share:"*"`
	Notes   string  `json:"notes"` // no share tag: never leaves this service
}

// The frontend seals an Account for the financial service, which opens it
// into the same type.
func Example() {
	// The financial service's keys. In production they are read with
	// ReadKeyset (private, encrypted under a KEK) and ReadPublicKeyset.
	finPrivate, _ := keyset.NewHandle(hybrid.DHKEM_X25519_HKDF_SHA256_HKDF_SHA256_AES_256_GCM_Key_Template())
	finPublic, _ := finPrivate.Public()
	finDet, _ := keyset.NewHandle(daead.AESSIVKeyTemplate()) // shared with its senders

	// The frontend knows the financial service's public keyset.
	to, _ := envelope.NewHPKERecipient(finPublic)
	frontend, err := fieldcrypt.New(fieldcrypt.Config{
		Self:       "frontend",
		Recipients: map[string]fieldcrypt.Recipient{"financial-service": {To: to, Deterministic: finDet}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	acct := Account{ID: "acc-1", Owner: "Ada Lovelace", SSN: "123456789", Balance: 42.5, Notes: "call back"}
	sealed, err := frontend.Seal(&acct, "financial-service")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("owner in the clear:", bytes.Contains(sealed, []byte("Lovelace")))
	fmt.Println("notes sent:", bytes.Contains(sealed, []byte("notes")))

	// The financial service opens it, requiring the sender the transport
	// authenticated.
	id, _ := envelope.NewHPKEIdentity(finPrivate)
	financial, err := fieldcrypt.New(fieldcrypt.Config{Self: "financial-service", Identity: id, Deterministic: finDet})
	if err != nil {
		fmt.Println(err)
		return
	}
	var got Account
	h, err := financial.OpenFrom("frontend", sealed, &got)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(h.Sender, "->", h.Recipient, h.Type)
	fmt.Printf("%+v\n", got)
	// Output:
	// owner in the clear: false
	// notes sent: false
	// frontend -> financial-service fieldcrypt_test.Account
	// {ID:acc-1 Owner:Ada Lovelace SSN:123456789 Balance:42.5 Notes:}
}
