package cli

import (
	"strings"

	"github.com/spf13/pflag"
)

// The OPTIONS part of every --help is generated from the command's FlagSet, from
// each flag's usage string: the flags are defined once, with their help, and the
// help, the parser and the completion scripts cannot disagree.

// argNames name the argument of the flags that take one, in --help and in the
// completion scripts, where DIR completes directories and FILE files. A flag not
// named here is named after its type (N for an int, DURATION, STRING...).
var argNames = map[string]string{
	"root": "DIR", "config": "FILE", "policy": "FILE", "metrics-file": "FILE",
	"jobs": "N", "keep-last": "N", "top": "N",
	"keep-tag": "REGEX", "tags": "REGEX", "pushgateway": "URL", "progress": "MODE",
}

// argName is the name of f's argument, "" for a flag that takes none.
func argName(f *pflag.Flag) string {
	if f.NoOptDefVal != "" {
		return ""
	}
	if n, ok := argNames[f.Name]; ok {
		return n
	}
	n, _ := pflag.UnquoteUsage(f)
	switch n {
	case "int", "uint":
		return "N"
	case "stringArray":
		return "VALUE"
	}
	return strings.ToUpper(n)
}

// flagUsage is f's help text on one line (pflag's convention: back quotes name the
// argument, and are dropped).
func flagUsage(f *pflag.Flag) string {
	_, u := pflag.UnquoteUsage(f)
	return strings.Join(strings.Fields(u), " ")
}

const (
	helpWidth  = 80 // the width the options are wrapped to
	helpColumn = 24 // where their help begins
)

// flagHelp lists the flags of fs, in the order they were defined, as
//
//	-n, --dry-run         Print what would be deleted; delete nothing.
//	    --root DIR        The registry's storage root directory.
//
// the help wrapped at helpWidth. A flag without a usage string is listed by name.
func flagHelp(fs *pflag.FlagSet) string {
	var b strings.Builder
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		left := "      --" + f.Name
		if f.Shorthand != "" {
			left = "  -" + f.Shorthand + ", --" + f.Name
		}
		if a := argName(f); a != "" {
			left += " " + a
		}
		b.WriteString(left)
		lines := wrap(flagUsage(f), helpWidth-helpColumn)
		if len(lines) == 0 {
			b.WriteString("\n")
			return
		}
		if len(left) < helpColumn {
			b.WriteString(strings.Repeat(" ", helpColumn-len(left)))
		} else {
			b.WriteString("\n" + strings.Repeat(" ", helpColumn))
		}
		b.WriteString(strings.Join(lines, "\n"+strings.Repeat(" ", helpColumn)) + "\n")
	})
	return b.String()
}

// wrap breaks text into lines of at most width characters, at spaces (a longer
// word gets a line of its own).
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		switch {
		case line == "":
			line = w
		case len(line)+1+len(w) <= width:
			line += " " + w
		default:
			lines = append(lines, line)
			line = w
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
