package nstest

import (
	"errors"
	"strings"
	"testing"
)

func TestVerdict(t *testing.T) {
	missing := errors.New("not running as root")
	for _, tc := range []struct {
		err     error
		require string
		fail    bool
		skip    bool
	}{
		{nil, "", false, false},
		{nil, "1", false, false},
		{missing, "", false, true},
		{missing, "0", false, true},
		{missing, "1", true, false},
	} {
		fail, msg := verdict(tc.err, tc.require)
		if fail != tc.fail || (msg != "" && !fail) != tc.skip {
			t.Errorf("verdict(%v, %q) = %v, %q; want fail=%v skip=%v", tc.err, tc.require, fail, msg, tc.fail, tc.skip)
		}
		if tc.err != nil && !strings.Contains(msg, tc.err.Error()) {
			t.Errorf("message %q does not say why", msg)
		}
	}
}
