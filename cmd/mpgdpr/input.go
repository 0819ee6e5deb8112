package main

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/privacykit/mpgdpr"
	"github.com/privacykit/mpgdpr/cmd/mpgdpr/internal/words"
)

// maxLine bounds one line (or CSV record) of an ID list.
const maxLine = 1 << 20

// maxProblems is how many bad lines an input error names before counting
// the rest: enough to fix a file in one go, short enough to read.
const maxProblems = 10

// idInput says where a job's distinct IDs come from.
type idInput struct {
	args      []string
	file      string // "-" is stdin
	csvColumn string
	trimSpace bool
	stripBOM  bool // --strip-bom (default on); off, a byte order mark is an error
	verbatim  bool // --verbatim-ids: control and invisible characters are sent as they are
}

// idRules are the checks every ID goes through.
type idRules struct {
	trim     bool // --trim-space
	verbatim bool // --verbatim-ids
}

// idList is what was read: the distinct IDs in input order, and how many
// repeats were dropped.
type idList struct {
	ids        []string
	duplicates int
	source     string
	bytes      int64 // the distinct IDs' total length
	bomDropped bool  // the file began with a UTF-8 byte order mark, removed
	verbatim   int   // IDs --verbatim-ids let through with characters otherwise refused
}

// notes are what a job says about its input before it starts.
func (l *idList) notes() []string {
	var n []string
	if l.bomDropped {
		n = append(n, fmt.Sprintf("note: %s starts with a UTF-8 byte order mark: removed (it marks the encoding, it is no part of the first ID)", l.source))
	}
	if l.duplicates > 0 {
		n = append(n, fmt.Sprintf("note: dropped %s in %s: each ID is filed once", words.Count(l.duplicates, "repeated ID"), l.source))
	}
	if l.verbatim > 0 {
		n = append(n, fmt.Sprintf("note: --verbatim-ids: %s in %s with a control or invisible character, sent byte for byte (one put there by accident names no one)", words.Count(l.verbatim, "ID"), l.source))
	}
	return n
}

// inputError is an ID list that cannot be used, naming the lines (never the
// IDs: they are personal data, and this may end up in a log).
type inputError struct {
	source   string
	problems []string
	more     int
}

func (e *inputError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: ", e.source)
	if len(e.problems) == 1 && e.more == 0 {
		b.WriteString(e.problems[0])
	} else {
		fmt.Fprintf(&b, "%s, nothing sent:", words.Count(len(e.problems)+e.more, "problem"))
		for _, p := range e.problems {
			b.WriteString("\n  " + p)
		}
		if e.more > 0 {
			fmt.Fprintf(&b, "\n  and %d more", e.more)
		}
	}
	return b.String()
}

func (e *inputError) add(format string, a ...any) {
	if len(e.problems) < maxProblems {
		e.problems = append(e.problems, fmt.Sprintf(format, a...))
	} else {
		e.more++
	}
}

// readIDs reads, checks and de-duplicates the IDs. Every error is bad
// input (exit 2): nothing is sent unless the whole list is good.
func readIDs(in idInput, stdin io.Reader) (*idList, error) {
	if len(in.args) > 0 && in.file != "" {
		return nil, usagef("give IDs as arguments or with --file, not both")
	}
	if in.csvColumn != "" && in.file == "" {
		return nil, usagef("--csv-column needs --file")
	}
	var ids []string
	var err error
	var bom bool
	source := "arguments"
	rules := idRules{trim: in.trimSpace, verbatim: in.verbatim}
	switch {
	case len(in.args) > 0:
		ids, err = checkIDs(in.args, "argument", rules, source)
	case in.file != "":
		var r io.Reader
		source = in.file
		if in.file == "-" {
			source, r = "stdin", stdin
		} else {
			f, ferr := os.Open(in.file)
			if ferr != nil {
				return nil, usagef("cannot read the ID file: %v", ferr)
			}
			defer f.Close()
			if fi, serr := f.Stat(); serr == nil && fi.IsDir() {
				return nil, usagef("cannot read the ID file: %s is a directory", in.file)
			}
			r = f
		}
		br := bufio.NewReaderSize(r, 64<<10)
		if bom, err = dropBOM(br, !in.stripBOM, source); err != nil {
			return nil, err
		}
		if in.csvColumn != "" {
			ids, err = readCSV(br, in.csvColumn, rules, source)
		} else {
			ids, err = readLines(br, rules, source)
		}
	default:
		return nil, usagef("no IDs: give them as arguments, or with --file PATH (--file - reads stdin)")
	}
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, usagef("%s: no IDs (the input is empty)", source)
	}
	list := &idList{source: source, bomDropped: bom}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			list.duplicates++
			continue
		}
		seen[id] = true
		if in.verbatim && mpgdpr.ValidateDistinctID(id) != nil {
			list.verbatim++
		}
		list.ids = append(list.ids, id)
		list.bytes += int64(len(id))
	}
	return list, nil
}

// bom is the UTF-8 encoding of U+FEFF, which spreadsheets and Windows
// editors write at the start of a "UTF-8" file.
const bom = "\ufeff"

// dropBOM removes a byte order mark at the start of a file, where it marks
// the encoding and is no part of the first ID; the caller says so in a
// note, never silently. With keep (--strip-bom=false) it is an error. A
// U+FEFF anywhere else is refused with the other invisible characters.
func dropBOM(br *bufio.Reader, keep bool, source string) (bool, error) {
	b, err := br.Peek(len(bom))
	if err != nil || string(b) != bom {
		return false, nil
	}
	if keep {
		return false, usagef("%s: line 1: starts with U+FEFF BYTE ORDER MARK (an invisible format character): remove it, or leave --strip-bom on", source)
	}
	_, _ = br.Discard(len(bom))
	return true, nil
}

// readLines reads one ID per line. CRLF endings are accepted (spreadsheets
// write them); a blank line is an error, never skipped, as it often means
// a list was cut or pasted wrong.
func readLines(r io.Reader, rules idRules, source string) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, usagef("%s: line %d is longer than %d bytes: is this an ID list?", source, len(lines)+1, maxLine)
		}
		return nil, usagef("cannot read the ID file %s: %v", source, err)
	}
	return checkIDs(lines, "line", rules, source)
}

// readCSV reads the named column of a CSV file with a header row.
func readCSV(r io.Reader, column string, rules idRules, source string) ([]string, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, usagef("%s: no IDs (the input is empty)", source)
	}
	if err != nil {
		return nil, csvError(source, err)
	}
	col := -1
	var names []string
	for i, h := range header {
		h = strings.TrimSpace(h)
		names = append(names, fmt.Sprintf("%q", h))
		if h == column && col < 0 {
			col = i
		}
	}
	if col < 0 {
		return nil, usagef("%s: no column %q in the header row (columns: %s)", source, column, strings.Join(names, ", "))
	}
	ie := &inputError{source: source}
	var ids []string
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvError(source, err)
		}
		line, _ := cr.FieldPos(col)
		id, problem := checkID(rec[col], rules)
		if problem != "" {
			ie.add("line %d, column %q: %s", line, column, problem)
			continue
		}
		ids = append(ids, id)
	}
	if len(ie.problems) > 0 {
		return nil, &usageError{ie.Error()}
	}
	if len(ids) == 0 {
		return nil, usagef("%s: no IDs (only a header row)", source)
	}
	return ids, nil
}

func csvError(source string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return usagef("%s: malformed CSV at line %d, column %d: %v", source, pe.Line, pe.Column, pe.Err)
	}
	return usagef("cannot read the ID file %s: %v", source, err)
}

// checkIDs checks every ID, naming each bad one by its position.
func checkIDs(raw []string, what string, rules idRules, source string) ([]string, error) {
	ie := &inputError{source: source}
	ids := make([]string, 0, len(raw))
	for i, r := range raw {
		id, problem := checkID(r, rules)
		if problem != "" {
			ie.add("%s %d: %s", what, i+1, problem)
			continue
		}
		ids = append(ids, id)
	}
	if len(ie.problems) > 0 {
		return nil, &usageError{ie.Error()}
	}
	return ids, nil
}

// checkID checks one ID. IDs are matched exactly by Mixpanel: an ID with
// stray spaces names someone else (or no one), and that person's data would
// stay, so spaces around an ID are an error unless trimming was asked for.
// With --verbatim-ids, any non-blank, valid UTF-8 ID is taken as it is
// (mpgdpr.ValidateVerbatimDistinctID, the client's WithVerbatimDistinctIDs
// rule).
func checkID(id string, rules idRules) (string, string) {
	if rules.trim {
		id = strings.TrimSpace(id)
	}
	if rules.verbatim {
		var ie *mpgdpr.InputError
		if err := mpgdpr.ValidateVerbatimDistinctID(id); errors.As(err, &ie) {
			return "", ie.Problem
		}
		return id, ""
	}
	switch {
	case strings.TrimSpace(id) == "":
		return "", "blank (IDs must be one per line, with no blank lines)"
	case !utf8.ValidString(id):
		return "", "not valid UTF-8"
	case strings.TrimSpace(id) != id:
		return "", "leading or trailing whitespace (IDs are matched exactly; fix the input or pass --trim-space)"
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		return "", "contains a tab or another control character (a TSV file? use a CSV file with --csv-column)"
	}
	// Invisible and format characters (zero-width spaces, bidirectional
	// controls, a byte order mark inside the list, ...) and unassigned code
	// points: such an ID names no one, and that person's data would stay.
	// The library's message names the character and its position, never
	// the ID.
	if err := mpgdpr.ValidateDistinctID(id); err != nil {
		var ie *mpgdpr.InputError
		if errors.As(err, &ie) {
			return "", ie.Problem + " (invisible in most editors: retype the ID or clean the file)"
		}
		return "", trimLib(err)
	}
	return id, ""
}
