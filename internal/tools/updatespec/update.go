package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/privacykit/mpgdpr/internal/specdiff"
	"github.com/privacykit/mpgdpr/internal/specmerge"
)

// The repository layout the command works on, relative to the root; the same
// paths generate.go passes to the merge step and oapi-codegen.
const (
	skeletonPath = "api/reconcile.yaml"
	sourcesDir   = "api/sources"
	mergedPath   = "api/openapi.yaml"
	codegenCfg   = "oapi-codegen.yaml"
)

type config struct {
	Root           string
	Replace, Add   string
	With           string
	AcceptBreaking bool
	DryRun         bool
	Check          bool // report only, with an exit status saying whether there is an update
	NoBuild        bool
	ToolsModfile   string
	// OasdiffBin and CodegenBin are executables to run instead of `go tool
	// oasdiff` and `go tool oapi-codegen` (the tests build them once).
	OasdiffBin, CodegenBin string
	Go                     string // the go command; "go" when empty
}

type update struct {
	config
	out     io.Writer
	target  string // absolute path of the source being replaced or added; "" to report only
	newDoc  []byte // its new content
	genPath string // the generated file, relative to root, from oapi-codegen.yaml
}

func newUpdate(cfg config, out io.Writer) (*update, error) {
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, err
	}
	cfg.Root = root
	if cfg.ToolsModfile == "" {
		cfg.ToolsModfile = filepath.Join(root, "tools", "go.mod")
	}
	if cfg.ToolsModfile, err = filepath.Abs(cfg.ToolsModfile); err != nil {
		return nil, err
	}
	u := &update{config: cfg, out: out}
	switch {
	case cfg.Replace != "" && cfg.Add != "":
		return nil, errors.New("-replace and -add exclude each other")
	case (cfg.Replace != "" || cfg.Add != "") && cfg.With == "":
		return nil, errors.New("-with names the new document")
	case cfg.Replace == "" && cfg.Add == "" && cfg.With != "":
		return nil, errors.New("-with needs -replace or -add")
	}
	if name := cfg.Replace + cfg.Add; name != "" {
		if !filepath.IsAbs(name) {
			name = filepath.Join(root, name)
		}
		if filepath.Dir(name) != filepath.Join(root, filepath.FromSlash(sourcesDir)) {
			return nil, fmt.Errorf("%s is not a file directly in %s", name, sourcesDir)
		}
		_, statErr := os.Stat(name)
		switch {
		case cfg.Replace != "" && statErr != nil:
			return nil, fmt.Errorf("-replace: %w (use -add for a new source)", statErr)
		case cfg.Add != "" && statErr == nil:
			return nil, fmt.Errorf("-add: %s exists (use -replace)", name)
		}
		if u.newDoc, err = os.ReadFile(cfg.With); err != nil {
			return nil, err
		}
		if _, err := specmerge.Extract(u.newDoc); err != nil {
			return nil, fmt.Errorf("-with %s: %w", cfg.With, err)
		}
		u.target = name
	}
	return u, nil
}

// plan is what the update would install and what it would change.
type plan struct {
	merged, gen        []byte
	specChanges        []specdiff.Change
	goAPI              specdiff.GoAPIDiff
	findings           []specdiff.Finding
	breakingFindings   []specdiff.Finding
	repairs            []string
	warnings           []string // what the merge left out (D25)
	included           []string // files the new document's $refs pulled in
	install            []byte   // what the target source is written with
	bundled            []string // the files resolved into install; none if it is the document as given
	unsourced          []string // recorded operations no source describes
	sourceUnchanged    bool
	mergedUnchanged    bool
	generatedUnchanged bool
}

func (p *plan) breaking() bool { return len(p.breakingFindings) > 0 || p.goAPI.Breaking() }

func (u *update) rel(path string) string {
	if r, err := filepath.Rel(u.Root, path); err == nil {
		return filepath.ToSlash(r)
	}
	return path
}

func (u *update) run(ctx context.Context, stderr io.Writer) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "updatespec: "+format+"\n", args...)
		return exitFailed
	}
	switch {
	case u.target == "":
		fmt.Fprintf(u.out, "Reporting on %s as it is against %s.\n", sourcesDir, mergedPath)
	case u.Replace != "":
		fmt.Fprintf(u.out, "Replacing %s with %s.\n", u.rel(u.target), u.With)
	default:
		fmt.Fprintf(u.out, "Adding %s from %s.\n", u.rel(u.target), u.With)
	}
	p, err := u.plan(ctx)
	if err != nil {
		var ce *specmerge.ConflictError
		if errors.As(err, &ce) {
			fmt.Fprintf(stderr, "updatespec: merge stopped: %v\n", ce)
			fmt.Fprintf(stderr, "updatespec: nothing was changed. See docs/UPDATING.md, \"Conflicts\".\n")
			return exitFailed
		}
		return fail("%v\nupdatespec: nothing was changed.", err)
	}
	u.report(p)

	if u.Check {
		return u.checkResult(p)
	}
	if p.breaking() && !u.AcceptBreaking {
		fmt.Fprintf(u.out, "\nRefused: the update has breaking changes (above). Nothing was changed.\n"+
			"To take it anyway, rerun with -accept-breaking and release a new major version of the module.\n")
		return exitBreaking
	}
	if u.DryRun {
		fmt.Fprintf(u.out, "\nDry run: nothing was changed.\n")
		return exitOK
	}
	if (u.target == "" || p.sourceUnchanged) && p.mergedUnchanged && p.generatedUnchanged {
		fmt.Fprintf(u.out, "\nNothing to write: the files already hold this update.\n")
		return exitOK
	}
	if err := u.install(ctx, p, stderr); err != nil {
		return fail("%v\nupdatespec: %s, %s and %s are restored; nothing was changed.", err, sourcesDir, mergedPath, u.genPath)
	}
	var written []string
	if u.target != "" && !p.sourceUnchanged {
		written = append(written, u.rel(u.target))
	}
	if !p.mergedUnchanged {
		written = append(written, mergedPath)
	}
	if !p.generatedUnchanged {
		written = append(written, u.genPath)
	}
	fmt.Fprintf(u.out, "\nWrote %s. Review with `git diff`, then commit them together.\n", strings.Join(written, ", "))
	return exitOK
}

// plan merges, generates and compares in a scratch directory; it changes
// nothing in the tree.
func (u *update) plan(ctx context.Context) (*plan, error) {
	skel, err := os.ReadFile(filepath.Join(u.Root, skeletonPath))
	if err != nil {
		return nil, err
	}
	srcs, err := u.sources()
	if err != nil {
		return nil, err
	}
	res, err := specmerge.Merge(skel, srcs)
	if err != nil {
		return nil, err
	}
	p := &plan{repairs: res.Repairs, warnings: res.Warnings, included: res.Included, unsourced: res.Unsourced}
	if p.merged, err = specmerge.Marshal(res.Doc); err != nil {
		return nil, err
	}
	if _, err := specmerge.Validate(ctx, p.merged); err != nil {
		return nil, err
	}
	base, err := os.ReadFile(filepath.Join(u.Root, mergedPath))
	if err != nil {
		return nil, err
	}
	p.mergedUnchanged = bytes.Equal(base, p.merged)
	if u.target != "" {
		if p.install, p.bundled, err = u.installForm(); err != nil {
			return nil, err
		}
		old, err := os.ReadFile(u.target)
		p.sourceUnchanged = err == nil && bytes.Equal(old, p.install)
	}

	tmp, err := os.MkdirTemp("", "updatespec-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	candidate := filepath.Join(tmp, "openapi.yaml")
	if err := os.WriteFile(candidate, p.merged, 0o644); err != nil {
		return nil, err
	}

	if p.specChanges, err = specdiff.Compare(base, p.merged); err != nil {
		return nil, err
	}
	oas := specdiff.Oasdiff{Go: u.Go, Modfile: u.ToolsModfile, Dir: u.Root, Bin: u.OasdiffBin}
	if p.findings, err = oas.Changelog(ctx, filepath.Join(u.Root, mergedPath), candidate); err != nil {
		return nil, err
	}
	for _, f := range p.findings {
		if specdiff.IsBreaking(f) {
			p.breakingFindings = append(p.breakingFindings, f)
		}
	}

	if p.gen, err = u.generate(ctx, tmp, candidate); err != nil {
		return nil, err
	}
	oldGen, err := os.ReadFile(filepath.Join(u.Root, u.genPath))
	if err != nil {
		return nil, err
	}
	p.generatedUnchanged = bytes.Equal(oldGen, p.gen)
	if p.goAPI, err = specdiff.CompareGo(oldGen, p.gen); err != nil {
		return nil, err
	}
	return p, nil
}

// sources reads api/sources the way internal/tools/specmerge does (every
// file, in name order) with the new document in place of the target.
func (u *update) sources() ([]specmerge.Source, error) {
	names, err := filepath.Glob(filepath.Join(u.Root, sourcesDir, "*"))
	if err != nil {
		return nil, err
	}
	if u.target != "" && u.Add != "" {
		names = append(names, u.target)
	}
	sort.Strings(names)
	var srcs []specmerge.Source
	for _, n := range names {
		raw := u.newDoc
		if n != u.target {
			if raw, err = os.ReadFile(n); err != nil {
				return nil, err
			}
		}
		dir := filepath.Dir(n)
		if n == u.target {
			dir = filepath.Dir(u.With) // its $refs are relative to where it was saved
		}
		srcs = append(srcs, specmerge.Source{Name: filepath.Base(n), Raw: raw, Dir: dir})
	}
	if len(srcs) == 0 {
		return nil, fmt.Errorf("no sources in %s", sourcesDir)
	}
	return srcs, nil
}

// generate runs the pinned oapi-codegen with the repository's configuration,
// writing into dir instead of gen/, and returns the generated file.
func (u *update) generate(ctx context.Context, dir, spec string) ([]byte, error) {
	raw, err := os.ReadFile(filepath.Join(u.Root, codegenCfg))
	if err != nil {
		return nil, err
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", codegenCfg, err)
	}
	out, _ := cfg["output"].(string)
	if out == "" || filepath.IsAbs(out) {
		return nil, fmt.Errorf("%s: output must be a path relative to the repository root, is %q", codegenCfg, out)
	}
	u.genPath = filepath.ToSlash(filepath.Clean(out))
	genFile := filepath.Join(dir, "gen.go")
	cfg["output"] = genFile
	tmpCfg, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, codegenCfg)
	if err := os.WriteFile(cfgPath, tmpCfg, 0o644); err != nil {
		return nil, err
	}
	if u.CodegenBin != "" {
		cmd := exec.CommandContext(ctx, u.CodegenBin, "-config", cfgPath, spec)
		cmd.Dir = u.Root
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("oapi-codegen: %w\n%s", err, bytes.TrimSpace(out))
		}
	} else if err := u.goCmd(ctx, "tool", "-modfile="+u.ToolsModfile, "oapi-codegen", "-config", cfgPath, spec); err != nil {
		return nil, fmt.Errorf("oapi-codegen: %w", err)
	}
	return os.ReadFile(genFile)
}

// installForm is what the target source is written with: the new document
// byte for byte, or, if it has $refs into other files, its bundled form (those
// files are not copied into api/sources, so the source must stand alone).
func (u *update) installForm() ([]byte, []string, error) {
	name := filepath.Base(u.target)
	data, files, err := specmerge.Bundle(specmerge.Source{Name: name, Raw: u.newDoc, Dir: filepath.Dir(u.With)})
	if err != nil || len(files) == 0 {
		return u.newDoc, nil, err
	}
	head := fmt.Sprintf("# %s as published (%s), bundled by internal/tools/updatespec:\n# its $refs into %s are resolved in place.\n",
		name, filepath.Base(u.With), strings.Join(files, ", "))
	return append([]byte(head), data...), files, nil
}

// checkResult ends a -check run: whether there is an update to take.
func (u *update) checkResult(p *plan) int {
	switch b := p.bump(); {
	case b == bumpMajor:
		fmt.Fprintf(u.out, "\nCheck: the new document has breaking changes (above); taking it needs -accept-breaking and a major release.\n")
		return exitBreaking
	case b == bumpNone && (u.target == "" || p.sourceUnchanged):
		fmt.Fprintf(u.out, "\nCheck: up to date; nothing to take.\n")
		return exitOK
	case b == bumpNone:
		fmt.Fprintf(u.out, "\nCheck: the new document differs from %s but changes neither %s nor %s; taking it is optional (release: none).\n", u.rel(u.target), mergedPath, u.genPath)
		return exitOK
	default:
		fmt.Fprintf(u.out, "\nCheck: an update is there to take (release: %s). Take it with\n  make update-spec SOURCE=%s NEW=%s\n", b, u.rel(u.target), u.With)
		return exitUpdate
	}
}

// goCmd runs the go command in the root, with its output in the error.
func (u *update) goCmd(ctx context.Context, args ...string) error {
	goCmd := u.Go
	if goCmd == "" {
		goCmd = "go"
	}
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = u.Root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// install writes the source, the merged document and the generated code,
// checks that the module still compiles, tests included (go vet ./...), and
// puts everything back if anything fails.
func (u *update) install(ctx context.Context, p *plan, stderr io.Writer) (err error) {
	files := []struct {
		path string
		data []byte
	}{
		{filepath.Join(u.Root, mergedPath), p.merged},
		{filepath.Join(u.Root, u.genPath), p.gen},
	}
	if u.target != "" {
		files = append(files, struct {
			path string
			data []byte
		}{u.target, p.install})
	}
	var saved []snapshot
	for _, f := range files {
		s, err := take(f.path)
		if err != nil {
			return err
		}
		saved = append(saved, s)
	}
	defer func() {
		if err == nil {
			return
		}
		for _, s := range saved {
			if rerr := s.restore(); rerr != nil {
				fmt.Fprintf(stderr, "updatespec: could not restore %s: %v\n", s.path, rerr)
			}
		}
	}()
	for i, f := range files {
		if err := os.WriteFile(f.path, f.data, saved[i].perm()); err != nil {
			return err
		}
	}
	if !u.NoBuild {
		// vet type-checks test files too, which build does not.
		if err := u.goCmd(ctx, "vet", "./..."); err != nil {
			return fmt.Errorf("the module does not compile (or vet) with the new generated code; fix the callers, or use -no-build and fix them after: %w", err)
		}
	}
	return nil
}

// snapshot is a file's state before the update.
type snapshot struct {
	path    string
	existed bool
	data    []byte
	mode    fs.FileMode
}

func take(path string) (snapshot, error) {
	s := snapshot{path: path}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if s.data, err = os.ReadFile(path); err != nil {
		return s, err
	}
	s.existed, s.mode = true, fi.Mode().Perm()
	return s, nil
}

func (s snapshot) perm() fs.FileMode {
	if s.existed {
		return s.mode
	}
	return 0o644
}

func (s snapshot) restore() error {
	if !s.existed {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := os.WriteFile(s.path, s.data, s.mode); err != nil {
		return err
	}
	return os.Chmod(s.path, s.mode)
}
