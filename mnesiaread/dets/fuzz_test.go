package dets_test

import (
	"bytes"
	"testing"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/mnesiaread/dets"
)

// FuzzDETS: any file is either refused or read to the end without a panic
// or a hang, and every object it gives is one whole term. The seeds in
// testdata/fuzz/FuzzDETS are small files Erlang wrote (a closed set, a bag
// never closed).
func FuzzDETS(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := dets.New(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		n := int64(0)
		rep, err := d.Objects(func(obj []byte) error {
			if l, err := term.Len(obj); err != nil || l != len(obj) {
				t.Fatalf("object is not one whole term: %v", err)
			}
			n++
			return nil
		}, nil)
		if err != nil {
			return
		}
		if rep.LiveObjects+rep.RecoveredObjects != n {
			t.Fatalf("report says %d+%d objects, %d given", rep.LiveObjects, rep.RecoveredObjects, n)
		}
	})
}
