package pullreport

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// Run is `gateway report [flags] [FILE...]`: it reads the files (standard
// input when none, or for "-") and prints the report. Exit codes: 0 done,
// 1 a file could not be read, 2 usage.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gateway report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", FormatTable, "`table`, csv or json")
	var f Filter
	fs.StringVar(&f.Customer, "customer", "", "only this customer (the login e-mail)")
	fs.StringVar(&f.Repository, "repository", "", "only this repository (stable/app)")
	fs.StringVar(&f.Reference, "reference", "", "only this tag or digest")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gateway report [--format table|csv|json] [--customer EMAIL] [--repository NAME] [--reference TAG|DIGEST] [FILE...]\n\n"+
			"Reads the gateway's JSON access records (files, or standard input: kubectl logs deploy/gateway | gateway report)\n"+
			"and prints per customer × repository × tag/digest: pulls (manifest GETs answered 200), first and last time, bytes.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch *format {
	case FormatTable, FormatCSV, FormatJSON:
	default:
		fmt.Fprintf(stderr, "gateway report: unknown format %q (table, csv or json)\n", *format)
		return 2
	}
	files := fs.Args()
	if len(files) == 0 {
		files = []string{"-"}
	}
	var recs []record
	var st Stats
	for _, name := range files {
		if err := readFile(name, stdin, &recs, &st); err != nil {
			fmt.Fprintf(stderr, "gateway report: %s: %v\n", name, err)
			return 1
		}
	}
	if err := Write(stdout, Aggregate(recs, f), *format); err != nil {
		fmt.Fprintf(stderr, "gateway report: %v\n", err)
		return 1
	}
	if st.Records == 0 {
		fmt.Fprintf(stderr, "gateway report: no access records of customers in %d lines (is access_log on?)\n", st.Lines)
	}
	return 0
}

func readFile(name string, stdin io.Reader, recs *[]record, st *Stats) error {
	if name == "-" {
		return Read(stdin, recs, st)
	}
	fh, err := os.Open(name)
	if err != nil {
		return err
	}
	defer fh.Close()
	return Read(fh, recs, st)
}
