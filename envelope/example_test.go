package envelope_test

import (
	"fmt"
	"log"

	"github.com/tink-crypto/tink-go/v2/hybrid"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/lifenavigator/crossservice/envelope"
)

func Example() {
	// The recipient generates its HPKE keyset and gives senders the public half.
	private, err := keyset.NewHandle(hybrid.DHKEM_X25519_HKDF_SHA256_HKDF_SHA256_AES_256_GCM_Key_Template())
	if err != nil {
		log.Fatal(err)
	}
	public, err := private.Public()
	if err != nil {
		log.Fatal(err)
	}

	// Sender side.
	to, err := envelope.NewHPKERecipient(public)
	if err != nil {
		log.Fatal(err)
	}
	sealer, err := envelope.NewSealer(envelope.SealerConfig{Sender: "frontend", Recipient: "financial-service", To: to})
	if err != nil {
		log.Fatal(err)
	}
	msg, err := sealer.Begin("accounts.Account")
	if err != nil {
		log.Fatal(err)
	}
	data := []byte(`{"id":"acc-1","owner":`)
	data, err = msg.AppendField(data, envelope.Random, []byte("/owner"), []byte("/owner"), []byte(`"Jane Doe"`))
	if err != nil {
		log.Fatal(err)
	}
	data = append(data, `,"balance":12.5}`...)
	sealed, err := msg.Finish(data)
	if err != nil {
		log.Fatal(err)
	}

	// Recipient side.
	id, err := envelope.NewHPKEIdentity(private)
	if err != nil {
		log.Fatal(err)
	}
	opener, err := envelope.NewOpener(envelope.OpenerConfig{Self: "financial-service", Identity: id})
	if err != nil {
		log.Fatal(err)
	}
	opened, err := opener.Open(sealed)
	if err != nil {
		log.Fatal(err)
	}
	// The sender is not authenticated by an HPKE envelope: compare it with
	// the caller the transport verified before trusting it.
	fmt.Println("sender:", opened.Header.Sender)

	// The marker sits at /owner in opened.Data; a real caller finds it while
	// decoding (fieldcrypt does). Here we know where it is.
	marker := opened.Data[len(`{"id":"acc-1","owner":`) : len(opened.Data)-len(`,"balance":12.5}`)]
	owner, err := opened.OpenField(marker, envelope.Random, []byte("/owner"), []byte("/owner"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("owner:", string(owner))
	// Output:
	// sender: frontend
	// owner: "Jane Doe"
}
