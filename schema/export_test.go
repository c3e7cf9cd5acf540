package schema

import "reflect"

// BuildUnnamed builds an uncached plan for t with a fixed type name, so
// that tests can plan struct types made with reflect.StructOf.
func BuildUnnamed(t reflect.Type) (*Plan, error) { return buildPlan(t, "test.Unnamed") }
