package export_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"

	"github.com/privacykit/mpgdpr/export"
)

func ExampleOpen() {
	const secret = "project-api-secret"

	// Build an encrypted archive like the one a GDPR retrieval links to.
	var buf bytes.Buffer
	w := export.NewWriter(&buf, secret)
	for _, f := range []struct{ name, body string }{
		{"events.json", `{"event":"Signed Up","properties":{"distinct_id":"user-1"}}` + "\n"},
		{"people.json", `{"$distinct_id":"user-1","$email":"ada@example.com"}` + "\n"},
	} {
		fw, err := w.Create(f.name)
		if err != nil {
			log.Fatal(err)
		}
		if _, err := io.WriteString(fw, f.body); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	// Open it with the secret, list it and print every file.
	a, err := export.Open(bytes.NewReader(buf.Bytes()), int64(buf.Len()), secret)
	if err != nil {
		log.Fatal(err)
	}
	for _, fi := range a.Files() {
		fmt.Printf("%s: %d bytes, encrypted=%v\n", fi.Name, fi.UncompressedSize, fi.Encrypted)
	}
	err = a.Walk(func(fi export.FileInfo, r io.Reader) error {
		b, err := io.ReadAll(r)
		fmt.Printf("%s says %s", fi.Name, b)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}

	// The wrong secret gets an error, never data: from Open, which tries
	// it on the first encrypted entry, or (for the 1 in 256 wrong secrets
	// that pass that check) from reading.
	_, err = export.Open(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "not-the-secret")
	fmt.Println(errors.Is(err, export.ErrWrongSecret))

	// Output:
	// events.json: 60 bytes, encrypted=true
	// people.json: 53 bytes, encrypted=true
	// events.json says {"event":"Signed Up","properties":{"distinct_id":"user-1"}}
	// people.json says {"$distinct_id":"user-1","$email":"ada@example.com"}
	// true
}
