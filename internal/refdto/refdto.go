// Package refdto holds the one reference DTO that benchmarks across the
// module measure, so that their figures compare: 12 fields, one nested
// struct, one slice, two random and one deterministic sensitive field.
package refdto

import "time"

// Recipient is the service [Order] is sealed for in benchmarks: it
// receives every field but Note.
const Recipient = "billing"

// Sender is the service that seals [Order] in benchmarks.
const Sender = "checkout"

// Order is the reference DTO.
type Order struct {
	ID        string    `json:"id" share:"*" validate:"required"`
	Customer  string    `json:"customer" share:"billing" sensitive:"random"`
	Email     string    `json:"email" share:"billing" sensitive:"deterministic" validate:"required,email"`
	Card      string    `json:"card" share:"billing" sensitive:"random"`
	Amount    float64   `json:"amount" share:"*"`
	Currency  string    `json:"currency" share:"*" validate:"len=3"`
	Quantity  int       `json:"quantity" share:"*"`
	Paid      bool      `json:"paid" share:"*"`
	CreatedAt time.Time `json:"created_at" share:"*"`
	Shipping  Address   `json:"shipping" share:"billing"`
	Items     []Item    `json:"items" share:"*"`
	Note      string    `json:"note"` // never leaves
}

// Address is Order's nested struct.
type Address struct {
	Street  string `json:"street" share:"*"`
	City    string `json:"city" share:"*"`
	Zip     string `json:"zip" share:"*"`
	Country string `json:"country" share:"*"`
}

// Item is the element of Order's slice.
type Item struct {
	SKU   string  `json:"sku" share:"*"`
	Qty   int     `json:"qty" share:"*"`
	Price float64 `json:"price" share:"*"`
}

// Sample returns a filled Order with three items.
func Sample() Order {
	return Order{
		ID:        "ord_01J9Z7Q4X8M2",
		Customer:  "Ada Lovelace",
		Email:     "ada@example.com",
		Card:      "4111111111111111",
		Amount:    129.95,
		Currency:  "EUR",
		Quantity:  3,
		Paid:      true,
		CreatedAt: time.Date(2026, 11, 29, 16, 20, 46, 123000000, time.UTC),
		Shipping:  Address{Street: "12 Analytical Row", City: "London", Zip: "NW1 6XE", Country: "GB"},
		Items: []Item{
			{SKU: "BK-001", Qty: 1, Price: 49.95},
			{SKU: "BK-002", Qty: 1, Price: 39.99},
			{SKU: "PN-777", Qty: 1, Price: 40.01},
		},
		Note: "VIP customer, call before delivery",
	}
}
