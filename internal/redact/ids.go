package redact

import (
	"encoding/json"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// IDs returns t with every whole-word occurrence of each distinct ID
// replaced by mark(id): as it is, Go-quoted (%q), inside a JSON string, or
// query- or path-escaped, the forms an error text quotes an ID in. Longer
// forms are replaced first, so that an ID inside a longer one ("bob" in
// "bob-2") leaves no part of the longer one behind. Whole-word: an
// occurrence that continues a word (a letter, digit or underscore next to
// the ID's own) is not the ID ("ann" in "annual"). Scrub before
// truncating, so that no cut-off ID is left. Unlike a Set, IDs of any
// length are replaced: a distinct ID is personal data however short.
func IDs(t string, ids []string, mark func(id string) string) string {
	type form struct{ text, id string }
	var forms []form
	seen := map[string]bool{}
	for _, id := range ids {
		if id == "" {
			continue
		}
		add := func(f string) {
			if f != "" && !seen[f] {
				seen[f] = true
				forms = append(forms, form{f, id})
			}
		}
		add(id)
		if q := strconv.Quote(id); len(q) > 2 {
			add(q[1 : len(q)-1])
		}
		if j, err := json.Marshal(id); err == nil && len(j) > 2 {
			add(string(j[1 : len(j)-1]))
		}
		add(url.QueryEscape(id))
		add(url.PathEscape(id))
	}
	sort.SliceStable(forms, func(i, j int) bool { return len(forms[i].text) > len(forms[j].text) })
	for _, f := range forms {
		t = replaceWord(t, f.text, mark(f.id))
	}
	return t
}

// replaceWord replaces the occurrences of w in t that do not continue a
// word on either side.
func replaceWord(t, w, repl string) string {
	if !strings.Contains(t, w) {
		return t
	}
	var b strings.Builder
	for {
		i := strings.Index(t, w)
		if i < 0 {
			b.WriteString(t)
			return b.String()
		}
		end := i + len(w)
		before, _ := utf8.DecodeLastRuneInString(t[:i])
		after, _ := utf8.DecodeRuneInString(t[end:])
		first, _ := utf8.DecodeRuneInString(w)
		last, _ := utf8.DecodeLastRuneInString(w)
		if i > 0 && wordRune(before) && wordRune(first) || end < len(t) && wordRune(after) && wordRune(last) {
			// Part of a longer word: keep it, go on after its first rune.
			_, n := utf8.DecodeRuneInString(t[i:])
			b.WriteString(t[:i+n])
			t = t[i+n:]
			continue
		}
		b.WriteString(t[:i])
		b.WriteString(repl)
		t = t[end:]
	}
}

func wordRune(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }
