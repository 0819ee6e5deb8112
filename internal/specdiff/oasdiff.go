package specdiff

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"sort"
	"strings"
)

// Levels of an oasdiff finding, as its JSON output numbers them.
const (
	LevelInfo = 1
	LevelWarn = 2
	LevelErr  = 3
)

// Finding is one entry of oasdiff's changelog.
type Finding struct {
	ID          string `json:"id"`
	Text        string `json:"text"`
	Level       int    `json:"level"`
	Operation   string `json:"operation"`
	OperationID string `json:"operationId"`
	Path        string `json:"path"`
}

// LevelName is "error", "warning" or "info".
func (f Finding) LevelName() string {
	switch f.Level {
	case LevelErr:
		return "error"
	case LevelWarn:
		return "warning"
	case LevelInfo:
		return "info"
	}
	return fmt.Sprintf("level %d", f.Level)
}

// String renders the finding on one line.
func (f Finding) String() string {
	where := strings.TrimSpace(f.Operation + " " + f.Path)
	if where == "" {
		where = "(document)"
	}
	return fmt.Sprintf("%-7s [%s] %s: %s", f.LevelName(), f.ID, where, f.Text)
}

// breakingInfo lists oasdiff findings below the warning level that still
// break users of a generated client. The merged document makes every
// response field optional (D05), so oasdiff files the removal of any response
// field under "info"; for a Go user who reads the field it is a compile
// error. Removing an operation after deprecation is likewise "info" for
// oasdiff and a removed method for Go.
var breakingInfo = map[string]bool{
	"response-optional-property-removed":                  true,
	"response-required-property-removed-with-deprecation": true,
	"request-property-removed-with-deprecation":           true,
	"api-removed-with-deprecation":                        true,
	"api-path-removed-with-deprecation":                   true,
}

// IsBreaking is the rule the update gate applies to an oasdiff finding:
// every error and every warning, and the info-level removals in breakingInfo.
func IsBreaking(f Finding) bool {
	return f.Level >= LevelWarn || breakingInfo[f.ID]
}

// Oasdiff runs the oasdiff pinned in a tools module.
type Oasdiff struct {
	Go      string // the go command; "go" when empty
	Modfile string // the tools go.mod that pins oasdiff
	Dir     string // a directory inside a module, for `go tool -modfile`
	// Bin is an oasdiff executable to run instead of `go tool oasdiff`
	// (tests build it once; see gotool). Modfile and Go are then unused.
	Bin string
}

// Changelog runs `oasdiff changelog` on two files and returns every finding
// (info level and up), sorted. External $refs are not followed.
func (o Oasdiff) Changelog(ctx context.Context, basePath, revisionPath string) ([]Finding, error) {
	goCmd := o.Go
	if goCmd == "" {
		goCmd = "go"
	}
	args := []string{"changelog", basePath, revisionPath, "--format", "json", "--level", "INFO", "--allow-external-refs=false"}
	cmd := exec.CommandContext(ctx, goCmd, append([]string{"tool", "-modfile=" + o.Modfile, "oasdiff"}, args...)...)
	if o.Bin != "" {
		cmd = exec.CommandContext(ctx, o.Bin, args...)
	}
	cmd.Dir = o.Dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("oasdiff changelog: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return ParseFindings(stdout.Bytes())
}

// ParseFindings decodes oasdiff's JSON output and sorts it by level (highest
// first), operation and text.
func ParseFindings(data []byte) ([]Finding, error) {
	var fs []Finding
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &fs); err != nil {
			return nil, fmt.Errorf("oasdiff output: %w", err)
		}
	}
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Level != b.Level {
			return a.Level > b.Level
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		if a.Operation != b.Operation {
			return a.Operation < b.Operation
		}
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return a.Text < b.Text
	})
	return fs, nil
}
