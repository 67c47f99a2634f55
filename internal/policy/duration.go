package policy

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

const (
	// Day is 24 hours: retention ages are absolute, not calendar days.
	Day = 24 * time.Hour
	// Week is 7 days.
	Week = 7 * Day
)

// unitOf returns the length of a duration unit, 0 when u is none.
func unitOf(u string) uint64 {
	switch u {
	case "ns":
		return uint64(time.Nanosecond)
	case "us", "µs", "μs": // U+00B5 micro sign, U+03BC Greek mu, as Go accepts
		return uint64(time.Microsecond)
	case "ms":
		return uint64(time.Millisecond)
	case "s":
		return uint64(time.Second)
	case "m":
		return uint64(time.Minute)
	case "h":
		return uint64(time.Hour)
	case "d":
		return uint64(Day)
	case "w":
		return uint64(Week)
	}
	return 0
}

// ParseDuration parses a non-negative duration the way time.ParseDuration does,
// with the units "d" (24h) and "w" (7d) besides ns, us (µs), ms, s, m and h:
// "30d", "2w", "36h", "1w2d12h", "1.5d", "90m". "0" needs no unit. It returns an
// error for an empty string, a missing or unknown unit, a negative duration and
// one that does not fit a time.Duration (about 292 years). For a string that
// time.ParseDuration accepts as non-negative, the result is the same.
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	if strings.HasPrefix(s, "-") {
		return 0, errors.New("negative duration " + strconv.Quote(orig))
	}
	s = strings.TrimPrefix(s, "+")
	if s == "0" {
		return 0, nil
	}
	if s == "" {
		return 0, badDuration(orig, "empty")
	}
	var d uint64
	for s != "" {
		c := s[0]
		if c != '.' && (c < '0' || c > '9') {
			return 0, badDuration(orig, "want numbers with units, as 30d, 2w, 36h or 1w2d12h")
		}
		// [0-9]*
		var v uint64
		i := 0
		for ; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
			if v > 1<<63/10 {
				return 0, badDuration(orig, "too large")
			}
			v = v*10 + uint64(s[i]-'0')
			if v > 1<<63 {
				return 0, badDuration(orig, "too large")
			}
		}
		pre := i > 0
		s = s[i:]
		// (\.[0-9]*)?
		var f uint64
		scale := 1.0
		post := false
		if s != "" && s[0] == '.' {
			s = s[1:]
			overflow := false
			i = 0
			for ; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
				if overflow {
					continue
				}
				if f > (1<<63-1)/10 {
					overflow = true
					continue
				}
				y := f*10 + uint64(s[i]-'0')
				if y > 1<<63 {
					overflow = true
					continue
				}
				f = y
				scale *= 10
			}
			post = i > 0
			s = s[i:]
		}
		if !pre && !post {
			return 0, badDuration(orig, "a number has no digits")
		}
		// unit
		i = 0
		for ; i < len(s) && s[i] != '.' && (s[i] < '0' || s[i] > '9'); i++ {
		}
		if i == 0 {
			return 0, badDuration(orig, "missing unit (ns, us, ms, s, m, h, d or w)")
		}
		u := s[:i]
		s = s[i:]
		unit := unitOf(u)
		if unit == 0 {
			return 0, badDuration(orig, "unknown unit "+strconv.Quote(u)+" (want ns, us, ms, s, m, h, d or w)")
		}
		if v > 1<<63/unit {
			return 0, badDuration(orig, "too large")
		}
		v *= unit
		if f > 0 {
			// float64 keeps fractions of a week nanosecond-accurate (< 2^53 ns).
			v += uint64(float64(f) * (float64(unit) / scale))
			if v > 1<<63 {
				return 0, badDuration(orig, "too large")
			}
		}
		d += v
		if d > 1<<63 {
			return 0, badDuration(orig, "too large")
		}
	}
	if d > 1<<63-1 {
		return 0, badDuration(orig, "too large")
	}
	return time.Duration(d), nil
}

func badDuration(s, why string) error {
	return errors.New("bad duration " + strconv.Quote(s) + ": " + why)
}

// FormatDuration formats d so that ParseDuration reads it back: whole days as
// "d", then hours, minutes and seconds, zero units left out ("30d", "1d12h",
// "2h30m", "1.5s", "500ms", "0"). A negative d is prefixed with "-".
func FormatDuration(d time.Duration) string {
	return string(appendDuration(nil, d))
}

func appendDuration(b []byte, d time.Duration) []byte {
	if d == 0 {
		return append(b, '0')
	}
	u := uint64(d)
	if d < 0 {
		b = append(b, '-')
		u = -u // also right for math.MinInt64
	}
	if days := u / uint64(Day); days > 0 {
		b = strconv.AppendUint(b, days, 10)
		b = append(b, 'd')
		u %= uint64(Day)
	}
	if h := u / uint64(time.Hour); h > 0 {
		b = strconv.AppendUint(b, h, 10)
		b = append(b, 'h')
		u %= uint64(time.Hour)
	}
	if m := u / uint64(time.Minute); m > 0 {
		b = strconv.AppendUint(b, m, 10)
		b = append(b, 'm')
		u %= uint64(time.Minute)
	}
	if u > 0 {
		// Below a minute, Go's own form: "1.5s", "500ms", "1µs".
		b = append(b, time.Duration(u).String()...)
	}
	return b
}

// DurationFlag is a pflag.Value (and flag.Value) for a time.Duration that takes
// ParseDuration's syntax, so that flags accept "30d" or "2w":
//
//	flags.Var((*policy.DurationFlag)(&o.grace), "grace", "...")
//
// Set refuses negative durations.
type DurationFlag time.Duration

// Set parses s with ParseDuration.
func (f *DurationFlag) Set(s string) error {
	d, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*f = DurationFlag(d)
	return nil
}

// String formats the duration with FormatDuration.
func (f *DurationFlag) String() string {
	if f == nil {
		return "0"
	}
	return FormatDuration(time.Duration(*f))
}

// Type names the value in help texts.
func (f *DurationFlag) Type() string { return "duration" }

// Duration returns the value as a time.Duration.
func (f *DurationFlag) Duration() time.Duration { return time.Duration(*f) }
