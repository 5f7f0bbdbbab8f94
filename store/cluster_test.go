package store

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestCollapse(t *testing.T) {
	got := Collapse([]Op{
		Put("b", "k1", []byte("1")),
		Put("b", "k2", []byte("2")),
		Delete("b", "k1"),
		Put("c", "k1", []byte("other bucket")),
		Put("b", "k2", []byte("2b")),
	})
	want := "[{b k1 [] 0} {b k2 [50 98] 0} {c k1 [111 116 104 101 114 32 98 117 99 107 101 116] 0}]"
	if fmt.Sprint(got) != want {
		t.Fatalf("Collapse = %v, want %s", got, want)
	}
	if got[0].Value != nil {
		t.Fatal("a put then delete collapsed to a put")
	}
}

func TestCheckTxn(t *testing.T) {
	var ops []Op
	for i := range MaxTxnKeys {
		ops = append(ops, Put("b", fmt.Sprint(i), []byte("v")), Delete("b", fmt.Sprint(i)))
	}
	if err := CheckTxn(nil, ops); err != nil {
		t.Fatalf("%d ops on %d keys: %v", len(ops), MaxTxnKeys, err)
	}
	if err := CheckTxn(nil, append(ops, Put("b", "more", nil))); !errors.Is(err, ErrInvalid) {
		t.Fatalf("%d keys: err = %v, want ErrInvalid", MaxTxnKeys+1, err)
	}
	for _, c := range []Cond{Absent("", "k"), Absent("b", ""), Unchanged("b", "k", -1), Absent(MetaBucket, "k")} {
		if err := CheckTxn([]Cond{c}, nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("cond %+v: err = %v, want ErrInvalid", c, err)
		}
	}
}

func TestCheckTTL(t *testing.T) {
	for ttl, want := range map[time.Duration]int64{time.Second: 1, 1500 * time.Millisecond: 2, time.Minute: 60} {
		if got, err := CheckTTL(ttl); err != nil || got != want {
			t.Errorf("CheckTTL(%s) = %d, %v; want %d", ttl, got, err, want)
		}
	}
	if _, err := CheckTTL(999 * time.Millisecond); !errors.Is(err, ErrInvalid) {
		t.Errorf("CheckTTL(999ms): err = %v, want ErrInvalid", err)
	}
}
