package early

import (
	"bytes"
	"testing"
)

func TestBootRandomFillsAndDiffers(t *testing.T) {
	a, b := make([]byte, 64), make([]byte, 64)
	if err := bootRandom(a); err != nil {
		t.Fatal(err)
	}
	if err := bootRandom(b); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, make([]byte, 64)) || bytes.Equal(a, b) {
		t.Errorf("bootRandom gave %x then %x", a, b)
	}
	id, err := randomMachineID()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ParseMachineID(id); !ok || id[12] != '4' {
		t.Errorf("random machine ID %q is not a version 4 UUID", id)
	}
}
