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
// 1 a file could not be read, 2 usage. What it found, when that is less
// than a report, goes to stderr as a hint.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gateway report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", FormatTable, "`table`, csv or json")
	refused := fs.Bool("refused", false, "list the manifest requests refused because the token does not grant the repository, instead of pulls")
	var f Filter
	fs.StringVar(&f.Customer, "customer", "", "only this customer (the login e-mail)")
	fs.StringVar(&f.Repository, "repository", "", "only this repository (stable/app)")
	fs.StringVar(&f.Reference, "reference", "", "only this tag or digest")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gateway report [--format table|csv|json] [--refused] [--customer EMAIL] [--repository NAME] [--reference TAG|DIGEST] [FILE...]\n\n"+
			"Reads the gateway's access lines, JSON or text (files, or standard input: kubectl logs deploy/gateway | gateway report)\n"+
			"and prints per customer × repository × tag/digest: pulls (manifest GETs answered 200), checks (manifest HEADs\n"+
			"answered 200: a client that has the image asking whether it is current), first and last time, bytes.\n"+
			"With --refused: the manifest requests refused because the customer's token does not grant the repository.\n\nflags:")
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
	var err error
	var shown int
	if *refused {
		rows := Refusals(recs, f)
		shown = len(rows)
		err = WriteRefusals(stdout, rows, *format)
	} else {
		rows := Aggregate(recs, f)
		shown = len(rows)
		err = Write(stdout, rows, *format)
	}
	if err != nil {
		fmt.Fprintf(stderr, "gateway report: %v\n", err)
		return 1
	}
	if h := hint(st, recs, f, *refused, shown); h != "" {
		fmt.Fprintln(stderr, "gateway report: "+h)
	}
	return 0
}

// hint says why a report is empty, or what it leaves out, in terms of what
// was read; "" when there is nothing to say.
func hint(st Stats, recs []record, f Filter, refused bool, shown int) string {
	const none = "no access records of customers: "
	switch {
	case st.Lines == 0:
		return none + "the input is empty"
	case st.LogLines == 0:
		return fmt.Sprintf(none+"none of the %d lines is a log line (JSON, or key=value text as slog writes it): is this the gateway's log?", st.Lines)
	case st.AccessLines == 0:
		return fmt.Sprintf(none+"the log has %d lines, none with msg=%s (an access line): is access_log on?", st.LogLines, accessMsg)
	case st.Records == 0:
		return fmt.Sprintf(none+"%d access lines, none of a read with a valid token (subject and repository)", st.AccessLines)
	}
	var pulls, denied int
	for i := range recs {
		switch recs[i].kind() {
		case KindPull, KindCheck:
			pulls++
		case KindDenied:
			denied++
		}
	}
	filtered := f != Filter{}
	switch {
	case refused && denied == 0:
		return fmt.Sprintf("%d access records of customers, none refused for the token's grants", st.Records)
	case !refused && pulls == 0:
		msg := fmt.Sprintf("%d access records of customers, no pull or check among them", st.Records)
		if denied > 0 {
			msg += fmt.Sprintf("; %d refused (--refused lists them)", denied)
		}
		return msg
	case shown == 0 && filtered:
		return "nothing matches the filters"
	case !refused && denied > 0:
		return fmt.Sprintf("%d manifest requests refused for the token's grants are not listed: --refused lists them", denied)
	}
	return ""
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
