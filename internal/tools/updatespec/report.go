package main

import (
	"fmt"
	"strings"

	"github.com/privacykit/mpgdpr/internal/specdiff"
)

// bump is the release an update calls for.
type bump string

const (
	bumpMajor bump = "MAJOR"
	bumpMinor bump = "MINOR"
	bumpPatch bump = "PATCH"
	bumpNone  bump = "none"
)

// bump applies the rule in docs/UPDATING.md: anything breaking is a new
// major version; new names or new elements in the document a minor one; any
// other change to the merged document or the generated code a patch.
func (p *plan) bump() bump {
	switch {
	case p.breaking():
		return bumpMajor
	case len(p.goAPI.Added) > 0:
		return bumpMinor
	}
	for _, c := range p.specChanges {
		if c.Kind == specdiff.Added {
			return bumpMinor
		}
	}
	if !p.mergedUnchanged || !p.generatedUnchanged {
		return bumpPatch
	}
	return bumpNone
}

func (u *update) report(p *plan) {
	w := u.out
	for _, r := range p.repairs {
		fmt.Fprintf(w, "repaired %s\n", r)
	}
	for _, f := range p.included {
		fmt.Fprintf(w, "resolved $refs into %s\n", f)
	}
	if len(p.bundled) > 0 {
		fmt.Fprintf(w, "note: %s would be written in bundled form (its $refs into %s resolved), as those files are not copied\n", u.rel(u.target), strings.Join(p.bundled, ", "))
	}
	for _, x := range p.warnings {
		fmt.Fprintf(w, "warning: %s\n", x)
	}
	for _, op := range p.unsourced {
		fmt.Fprintf(w, "warning: no source describes %s (kept from %s)\n", op, skeletonPath)
	}

	fmt.Fprintf(w, "\n== Merged document: %s ==\n", mergedPath)
	if len(p.specChanges) == 0 {
		if p.mergedUnchanged {
			fmt.Fprintln(w, "unchanged")
		} else {
			fmt.Fprintln(w, "no change to operations, parameters, schemas or fields (descriptions or examples only)")
		}
	}
	for _, c := range p.specChanges {
		fmt.Fprintln(w, c)
	}

	fmt.Fprintf(w, "\n== Generated Go API: %s ==\n", u.genPath)
	switch {
	case p.goAPI.Empty() && p.generatedUnchanged:
		fmt.Fprintln(w, "unchanged")
	case p.goAPI.Empty():
		fmt.Fprintln(w, "no exported name added, removed or changed (comments or bodies only)")
	}
	list := func(title string, names []string) {
		if len(names) == 0 {
			return
		}
		fmt.Fprintf(w, "%s (%d):\n", title, len(names))
		for _, n := range names {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
	list("removed", p.goAPI.Removed)
	list("changed", p.goAPI.Changed)
	list("added", p.goAPI.Added)
	if len(p.goAPI.InterfaceGrown) > 0 {
		fmt.Fprintf(w, "note: %d method(s) added to exported interfaces; a type outside this module that implements one of them must add them.\n", len(p.goAPI.InterfaceGrown))
	}

	fmt.Fprintf(w, "\n== Breaking changes ==\n")
	fmt.Fprintf(w, "oasdiff (rule: every error and warning, plus removed response fields and operations; see docs/UPDATING.md):\n")
	if len(p.breakingFindings) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, f := range p.breakingFindings {
		fmt.Fprintf(w, "  %s\n", f)
	}
	if n := len(p.findings) - len(p.breakingFindings); n > 0 {
		fmt.Fprintf(w, "  (%d other oasdiff finding(s), not breaking)\n", n)
	}
	if p.goAPI.Breaking() {
		fmt.Fprintf(w, "Go API: %d exported name(s) removed, %d changed (listed above).\n", len(p.goAPI.Removed), len(p.goAPI.Changed))
	} else {
		fmt.Fprintln(w, "Go API: no exported name removed or changed.")
	}

	fmt.Fprintf(w, "\n== Release ==\n")
	switch b := p.bump(); b {
	case bumpMajor:
		fmt.Fprintln(w, "MAJOR: the generated API changes incompatibly. Accepting this update means a new major version of")
		fmt.Fprintln(w, "github.com/privacykit/mpgdpr (from v2 on, the module path gains the /vN suffix and every import changes).")
	case bumpMinor:
		fmt.Fprintln(w, "MINOR: additions only; existing callers keep compiling and behaving the same.")
		if len(p.goAPI.InterfaceGrown) > 0 {
			fmt.Fprintln(w, "Implementations of the grown interfaces (mpgdprtest's fake server implements gen.ServerInterface)")
			fmt.Fprintln(w, "must add the new methods; say so in the release notes.")
		}
	case bumpPatch:
		fmt.Fprintln(w, "PATCH: no addition or removal; documentation or examples changed.")
	default:
		fmt.Fprintln(w, "none: the merged document and the generated code are unchanged.")
	}
	if u.target == "" && (!p.mergedUnchanged || !p.generatedUnchanged) {
		fmt.Fprintf(w, "(%s or %s is out of date with %s.)\n", mergedPath, u.genPath, sourcesDir)
	}
}
