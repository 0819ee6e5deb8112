package safefile

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestName holds the cases of both former copies: the CLI's (strict:
// MaxName bytes, no leading dot) and the worker's (which let ".hidden" and
// any length through), now one rule.
func TestName(t *testing.T) {
	for id, keep := range map[string]bool{
		"ret-0001-ab12": true, "a.b_c-D9": true, "2a6f5b1c-0000-4000-8000-000000000001": true,
		strings.Repeat("x", MaxName): true,
		"../etc":                     false, ".hidden": false, ".": false, "..": false, "a/b": false, "": false, `a\b`: false,
		"tab\tid": false, "é": false, "a b": false, strings.Repeat("x", MaxName+1): false,
	} {
		got := Name(id)
		if (got == id) != keep || got == "" || strings.ContainsAny(got, `/\`) || strings.HasPrefix(got, ".") || len(got) > MaxName {
			t.Errorf("Name(%q) = %q", id, got)
		}
	}
	// The CLI's names of unsafe ids stay what they were (its journal's
	// digest of the one id, 16 hex digits: sha256("\x04../x")).
	if got := Name("../x"); got != "task-93626e3b555aadf0" {
		t.Errorf("Name(../x) = %q", got)
	}
	if Name("../x") == Name("../y") {
		t.Error("two unsafe ids share a name")
	}
}

func open(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// TestTryLock: two opens of one file, as two processes would hold it.
func TestTryLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	a, b := open(t, path), open(t, path)
	if err := TryLock(a); err != nil {
		t.Fatal(err)
	}
	if err := TryLock(b); !errors.Is(err, ErrLocked) {
		t.Fatalf("second TryLock = %v, want ErrLocked", err)
	}
	if err := Unlock(a); err != nil {
		t.Fatal(err)
	}
	if err := TryLock(b); err != nil {
		t.Fatalf("after Unlock: %v", err)
	}
	_ = b.Close() // closing releases it too
	if err := TryLock(a); err != nil {
		t.Fatalf("after Close: %v", err)
	}
	if _, err := a.WriteString("still writable"); err != nil {
		t.Errorf("a locked file is written through its handle: %v", err)
	}
}

// TestLockWaits: Lock returns only once the holder lets go.
func TestLockWaits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	a, b := open(t, path), open(t, path)
	if err := Lock(a); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- Lock(b) }()
	time.Sleep(50 * time.Millisecond) // a Lock that does not wait returns by now
	select {
	case err := <-done:
		t.Fatalf("Lock returned %v while the lock was held", err)
	default:
	}
	if err := Unlock(a); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := TryLock(a); !errors.Is(err, ErrLocked) {
		t.Errorf("the waiter holds the lock now: TryLock = %v", err)
	}
}

func TestErrUnsupported(t *testing.T) {
	if !errors.Is(ErrUnsupported, errors.ErrUnsupported) || errors.Is(ErrLocked, errors.ErrUnsupported) {
		t.Error("ErrUnsupported matches errors.ErrUnsupported, ErrLocked does not")
	}
	if runtime.GOOS == "linux" || runtime.GOOS == "darwin" || runtime.GOOS == "windows" {
		f := open(t, filepath.Join(t.TempDir(), "lock"))
		if err := TryLock(f); errors.Is(err, ErrUnsupported) {
			t.Errorf("%s has file locks: %v", runtime.GOOS, err)
		}
	}
}
