package insecurekeyset_test

import (
	"bytes"
	"fmt"

	"github.com/tink-crypto/tink-go/v2/daead"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/lifenavigator/crossservice/fieldcrypt/insecurekeyset"
)

// A test fixture: a deterministic keyset written and read back in
// cleartext. Never do this with keys that protect real data.
func Example() {
	h, err := keyset.NewHandle(daead.AESSIVKeyTemplate())
	if err != nil {
		fmt.Println(err)
		return
	}
	var file bytes.Buffer
	if err := insecurekeyset.Write(&file, h); err != nil {
		fmt.Println(err)
		return
	}
	back, err := insecurekeyset.Read(&file)
	if err != nil {
		fmt.Println(err)
		return
	}
	p1, _ := h.Primary()
	p2, _ := back.Primary()
	fmt.Println("same primary key:", p1.KeyID() == p2.KeyID())
	// Output: same primary key: true
}
