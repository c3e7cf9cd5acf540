package main

import (
	"context"
	"fmt"
	"reflect"
	"slices"

	"github.com/lifenavigator/crossservice/schema"
)

func init() {
	register("report", "print the exposure matrix of schema files (Markdown or Graphviz DOT)", reportCmd)
}

func reportCmd(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "report", "--schema FILE [--schema FILE...] [--services a,b] [--format markdown|dot]", `
Prints which service receives which field of the message types described by
the schema files, and how: clear, random, deterministic or stripped. Markdown
is a table for reviews; DOT is a Graphviz graph (xsvc report --format dot ... |
dot -Tsvg > exposure.svg).

Go types get the same report from the library:
    e, err := schema.Report([]reflect.Type{reflect.TypeFor[Account]()},
        []string{"financial-service", "analytics-service"})
    fmt.Print(e.Markdown()) // or e.DOT()
`+schemaFileHelp)
	var files listFlag
	fs.Var(&files, "schema", "a schema file (repeatable; required)")
	services := fs.String("services", "", "the columns: comma-separated service names (default: every service the files name)")
	format := fs.String("format", "markdown", "markdown or dot")
	out := fs.String("out", "", "file to write (default: standard output)")
	force := fs.Bool("force", false, "replace an existing --out file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if len(files) == 0 {
		return usage("--schema is required", "give one or more schema files")
	}
	if *format != "markdown" && *format != "dot" {
		return usage("--format must be markdown or dot", "")
	}
	var types []reflect.Type
	var named []string
	for _, path := range files {
		f, err := loadSchema(e, path)
		if err != nil {
			return err
		}
		types = append(types, f.Type)
		named = append(named, sharedWith(f.Plan.Root, map[*schema.Node]bool{})...)
	}
	cols := splitList(*services)
	if len(cols) == 0 {
		slices.Sort(named)
		cols = slices.Compact(named)
	}
	if len(cols) == 0 {
		return usage("the schema files name no service (every field is stripped or shared with \"*\")", "name the columns with --services")
	}
	exp, err := schema.Report(types, cols)
	if err != nil {
		return usage(oneLine(err.Error()), "service names are lowercase letters, digits and single hyphens, each once")
	}
	text := exp.Markdown()
	if *format == "dot" {
		text = exp.DOT()
	}
	if err := writeOutput(e, *out, []byte(text), *force, "report file"); err != nil {
		return err
	}
	if *out != "" && *out != "-" {
		fmt.Fprintf(e.stdout, "wrote %s: %d rows, %d services\n", *out, len(exp.Rows), len(cols))
	}
	return nil
}

// sharedWith lists the services named in share lists below n.
func sharedWith(n *schema.Node, seen map[*schema.Node]bool) []string {
	if n == nil || seen[n] {
		return nil
	}
	seen[n] = true
	var out []string
	for _, f := range n.Fields {
		out = append(out, f.Share...)
		out = append(out, sharedWith(f.Node, seen)...)
	}
	return append(out, sharedWith(n.Elem, seen)...)
}
