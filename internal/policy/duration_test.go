package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestParseDuration(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		err  string // substring of the error; "" for none
	}{
		{"0", 0, ""},
		{"+0", 0, ""},
		{"0s", 0, ""},
		{"0d", 0, ""},
		{"30d", 30 * Day, ""},
		{"2w", 14 * Day, ""},
		{"36h", 36 * time.Hour, ""},
		{"1w2d12h", 9*Day + 12*time.Hour, ""},
		{"1.5d", 36 * time.Hour, ""},
		{".5w", 84 * time.Hour, ""},
		{"1d1d", 2 * Day, ""},
		{"90m", 90 * time.Minute, ""},
		{"1h30m15s", time.Hour + 30*time.Minute + 15*time.Second, ""},
		{"500ms", 500 * time.Millisecond, ""},
		{"1us", time.Microsecond, ""},
		{"1µs", time.Microsecond, ""},
		{"1ns", 1, ""},
		{"+1h", time.Hour, ""},
		{"106751d", 106751 * Day, ""},
		{"15250w", 15250 * Week, ""},
		{"2562047h47m16.854775807s", 1<<63 - 1, ""},

		{"", 0, `bad duration "": empty`},
		{"+", 0, `bad duration "+": empty`},
		{"-1h", 0, `negative duration "-1h"`},
		{"-0", 0, `negative duration`},
		{"10", 0, `bad duration "10": missing unit`},
		{"3x", 0, `bad duration "3x": unknown unit "x"`},
		{"1D", 0, `unknown unit "D"`},
		{"1y", 0, `unknown unit "y"`},
		{"d", 0, `bad duration "d": want numbers with units`},
		{".d", 0, `a number has no digits`},
		{"1h ", 0, `unknown unit "h "`},
		{" 1h", 0, `want numbers with units`},
		{"1h-1m", 0, `unknown unit "h-"`},
		{"106752d", 0, `too large`},
		{"15251w", 0, `too large`},
		{"2562047h47m16.854775808s", 0, `too large`},
		{"99999999999999999999s", 0, `too large`},
		{"9223372036854775808ns", 0, `too large`},
		{"1d9223372036854775807ns", 0, `too large`},
	} {
		got, err := ParseDuration(c.in)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("ParseDuration(%q): %v", c.in, err)
		case c.err == "" && got != c.want:
			t.Errorf("ParseDuration(%q) = %v, want %v", c.in, got, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("ParseDuration(%q) = %v, %v; want error with %q", c.in, got, err, c.err)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for _, c := range []struct {
		in   time.Duration
		want string
	}{
		{0, "0"},
		{30 * Day, "30d"},
		{36 * time.Hour, "1d12h"},
		{2*time.Hour + 30*time.Minute, "2h30m"},
		{Day + time.Second, "1d1s"},
		{1500 * time.Millisecond, "1.5s"},
		{500 * time.Millisecond, "500ms"},
		{time.Minute + time.Nanosecond, "1m1ns"},
		{time.Microsecond, "1µs"},
		{-time.Hour, "-1h"},
		{1<<63 - 1, "106751d23h47m16.854775807s"},
		{-1 << 63, "-106751d23h47m16.854775808s"},
	} {
		if got := FormatDuration(c.in); got != c.want {
			t.Errorf("FormatDuration(%v) = %q, want %q", c.in, got, c.want)
		}
		if c.in >= 0 {
			if back, err := ParseDuration(c.want); err != nil || back != c.in {
				t.Errorf("ParseDuration(%q) = %v, %v; want %v", c.want, back, err, c.in)
			}
		}
	}
}

func TestDurationFlag(t *testing.T) {
	grace := time.Hour
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	fs.Var((*DurationFlag)(&grace), "grace", "")
	if got := fs.Lookup("grace").DefValue; got != "1h" {
		t.Errorf("DefValue = %q, want 1h", got)
	}
	if err := fs.Parse([]string{"--grace", "1w2d"}); err != nil {
		t.Fatal(err)
	}
	if grace != 9*Day {
		t.Errorf("grace = %v, want 9d", grace)
	}
	if got := fs.Lookup("grace").Value.String(); got != "9d" {
		t.Errorf("String = %q", got)
	}
	if got := fs.Lookup("grace").Value.Type(); got != "duration" {
		t.Errorf("Type = %q", got)
	}
	err := fs.Parse([]string{"--grace=-1h"})
	if err == nil || !strings.Contains(err.Error(), `negative duration "-1h"`) {
		t.Errorf("--grace=-1h: %v", err)
	}
	if grace != 9*Day {
		t.Errorf("a refused value changed grace to %v", grace)
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"0", "30d", "2w", "36h", "1w2d12h", "1.5d", "3x", "-1h", "", "1h30m",
		"2562047h47m16.854775807s", "15251w", ".5w", "1µs", "9223372036854775808ns", "0.0000000001w"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			if d != 0 {
				t.Errorf("ParseDuration(%q) = %v with error %v", s, d, err)
			}
		} else {
			if d < 0 {
				t.Fatalf("ParseDuration(%q) = %v < 0", s, d)
			}
			if back, err := ParseDuration(FormatDuration(d)); err != nil || back != d {
				t.Errorf("FormatDuration(%v) = %q reads back as %v, %v", d, FormatDuration(d), back, err)
			}
		}
		// Without d and w, it agrees with time.ParseDuration on every
		// non-negative duration.
		if strings.ContainsAny(s, "dw") {
			return
		}
		want, werr := time.ParseDuration(s)
		switch {
		case werr != nil:
			if err == nil {
				t.Errorf("ParseDuration(%q) = %v, time.ParseDuration refuses it: %v", s, d, werr)
			}
		case strings.HasPrefix(s, "-"):
			if err == nil {
				t.Errorf("ParseDuration(%q) = %v, want an error", s, d)
			}
		case err != nil || d != want:
			t.Errorf("ParseDuration(%q) = %v, %v; time.ParseDuration gives %v", s, d, err, want)
		}
	})
}
