// promql-check parses PromQL expressions with Prometheus' own parser, so the chart's alert
// rules and dashboard queries are known to be valid PromQL before anyone loads them.
//
// Input (stdin): one JSON object per line, {"name": "...", "expr": "..."}.
// Output: one line per expression that does not parse, "name: error"; exit status 1 if any.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"github.com/prometheus/prometheus/promql/parser"
)

type item struct {
	Name string `json:"name"`
	Expr string `json:"expr"`
}

func main() {
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	promql := parser.NewParser(parser.Options{})
	bad, total := 0, 0
	for scanner.Scan() {
		var it item
		if err := json.Unmarshal(scanner.Bytes(), &it); err != nil {
			fmt.Fprintf(os.Stderr, "bad input line: %v\n", err)
			os.Exit(2)
		}
		total++
		if _, err := promql.ParseExpr(it.Expr); err != nil {
			bad++
			fmt.Printf("%s: %v\n", it.Name, err)
		}
	}
	if err := scanner.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "reading stdin: %v\n", err)
		os.Exit(2)
	}
	fmt.Fprintf(os.Stderr, "%d expressions, %d invalid\n", total, bad)
	if bad > 0 {
		os.Exit(1)
	}
}
