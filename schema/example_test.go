package schema_test

import (
	"fmt"
	"reflect"

	"github.com/lifenavigator/crossservice/schema"
)

// The exposure report of the Account type of DESIGN.md (declared in this
// package's tests): who receives which field, and how.
func ExampleReport() {
	e, err := schema.Report([]reflect.Type{reflect.TypeFor[Account]()},
		[]string{"financial-service", "analytics-service", "billing"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(e.Markdown())
	// Output:
	// | Field | Go type | financial-service | analytics-service | billing |
	// |---|---|---|---|---|
	// | Account.id | string | clear | clear | stripped |
	// | Account.owner | string | random | stripped | stripped |
	// | Account.ssn | string | deterministic | stripped | stripped |
	// | Account.balance | float64 | clear | clear | clear |
	// | Account.notes | string | stripped | stripped | stripped |
}

// A typo in a tag is an error naming the type, the field and the key, never
// a field silently sent in the clear.
func ExampleFor_typo() {
	type Payment struct {
		Card string `json:"card" share:"billing" sensitve:"random"`
	}
	_, err := schema.For(reflect.TypeFor[Payment]())
	fmt.Println(err)
	// Output:
	// schema: schema_test.Payment.Card: tag "sensitve": unknown tag key close to "share" or "sensitive"; tag keys are case-sensitive
}
