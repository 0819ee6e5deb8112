//go:build unix

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestFakeFromPython runs testdata/fake_client.py: Python's standard
// library alone (urllib, zipfile) drives the fake through every operation,
// a 409, a 429, a fault, a schedule advance, an export and a violation.
// The export it saved is then opened with Info-ZIP unzip -P.
func TestFakeFromPython(t *testing.T) {
	t.Parallel()
	python := lookTool(t, "python3")
	rate := startFake(t, fakeEnv, "--json", "--rate", "0.01")
	out := t.TempDir()
	cmd := exec.Command(python, filepath.Join("testdata", "fake_client.py"))
	// The whole environment: a python3 from pyenv or a virtualenv needs it.
	cmd.Env = append(os.Environ(), append([]string{
		"FAKE_BIN=" + binary(t), "FAKE_RATE_API=" + rate.ready.APIURL, "FAKE_OUT=" + out,
	}, fakeEnv...)...)
	b, err := cmd.CombinedOutput()
	t.Logf("python3 testdata/fake_client.py:\n%s", b)
	if err != nil {
		t.Fatalf("the Python client failed: %v", err)
	}
	unzipExport(t, filepath.Join(out, "export.zip"), fakeSecret, "py-1", "py-2")
}
