package cli

import (
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// helpOption is an option line of a --help: "  -x, --remove ..." or "      --root DIR ...".
var helpOption = regexp.MustCompile(`^(?:  -([A-Za-z0-9]), |      )--([a-z0-9][a-z0-9-]*)(?: ([A-Z][A-Z_]*))?(?:  |$| [A-Z])`)

type helpFlag struct{ short, arg string }

// helpFlags are the flags the option lines of help list, by name.
func helpFlags(t *testing.T, help string) map[string]helpFlag {
	t.Helper()
	got := map[string]helpFlag{}
	for _, l := range strings.Split(help, "\n") {
		if m := helpOption.FindStringSubmatch(l); m != nil {
			if _, dup := got[m[2]]; dup {
				t.Errorf("--%s is listed twice", m[2])
			}
			got[m[2]] = helpFlag{m[1], m[3]}
		}
	}
	return got
}

// commandFlags are, for each command, the FlagSets its parser uses (trash's help
// covers list, purge and restore) and its --help.
func commandFlags() map[string]struct {
	sets []*pflag.FlagSet
	help string
} {
	const prog = "clean-registry"
	var (
		o     options
		tc    trashCmd
		cc    checkCmd
		dc    duCmd
		h, js bool
	)
	type entry = struct {
		sets []*pflag.FlagSet
		help string
	}
	return map[string]entry{
		"main":       {[]*pflag.FlagSet{mainFlags(prog, &o)}, mainUsage(prog)},
		"trash":      {[]*pflag.FlagSet{trashFlags(prog, "list", &tc, &h), trashFlags(prog, "purge", &tc, &h), trashFlags(prog, "restore", &tc, &h)}, trashUsage(prog)},
		"check":      {[]*pflag.FlagSet{checkFlags(prog, &cc, &h)}, checkUsage(prog)},
		"du":         {[]*pflag.FlagSet{duFlags(prog, &dc, &h)}, duUsage(prog)},
		"version":    {[]*pflag.FlagSet{versionFlags(prog, &h, &js)}, versionUsage(prog)},
		"completion": {[]*pflag.FlagSet{completionFlags(prog, &h)}, completionUsage(prog)},
	}
}

// TestHelpListsEveryFlag: each command's --help lists every flag its parser
// accepts, with its shorthand and argument, and no flag the parser refuses; and
// every flag has its help written.
func TestHelpListsEveryFlag(t *testing.T) {
	for name, c := range commandFlags() {
		listed := helpFlags(t, c.help)
		accepted := map[string]bool{}
		for _, fs := range c.sets {
			fs.VisitAll(func(f *pflag.Flag) {
				accepted[f.Name] = true
				if strings.TrimSpace(f.Usage) == "" {
					t.Errorf("%s: --%s has no usage string: write its help where it is defined", name, f.Name)
				}
				got, ok := listed[f.Name]
				switch {
				case !ok:
					t.Errorf("%s --help does not list --%s", name, f.Name)
				case got.short != f.Shorthand || got.arg != argName(f):
					t.Errorf("%s --help lists --%s as -%s %s, the parser takes -%s %s", name, f.Name, got.short, got.arg, f.Shorthand, argName(f))
				}
			})
		}
		for n := range listed {
			if !accepted[n] {
				t.Errorf("%s --help lists --%s, which its parser refuses", name, n)
			}
		}
		if len(listed) == 0 {
			t.Errorf("%s --help lists no options:\n%s", name, c.help)
		}
	}
}

// The commands print the help generated from their flags.
func TestHelpOutput(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"trash", "-h"}, {"restore", "--help"}, {"check", "-h"}, {"du", "--help"}, {"version", "-h"}, {"completion", "--help"}} {
		code, out, _ := cli(args...)
		if code != ExitOK || !strings.Contains(out, "Options:\n") || !strings.Contains(out, "  -h, --help            Show this help and exit.\n") {
			t.Errorf("%q: exit %d\n%s", args, code, out)
		}
	}
	_, out, _ := cli("--help")
	for _, want := range []string{"Usage: ", "\nOptions:\n  -x, --remove          Remove the specified images or repositories.\n",
		"  -n, --dry-run         Print what would be deleted; delete nothing.\n",
		"      --upload-age DURATION\n                        Purge unfinished uploads older than this (default 24h).\n",
		" completion SHELL ", "\nExit status: 0 done"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %q:\n%s", want, out)
		}
	}
	opts := out[strings.Index(out, "\nOptions:\n"):strings.Index(out, "\nExit status")]
	for _, l := range strings.Split(opts, "\n") {
		if len(l) > helpWidth {
			t.Errorf("--help option line longer than %d: %q", helpWidth, l)
		}
	}
}

// A flag without help is still listed, by name; the flags keep their order.
func TestFlagHelpLayout(t *testing.T) {
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.Bool("zeta", false, "")
	fs.StringP("alpha", "a", "", "The `PATTERN` to match, with a help long enough to be wrapped onto a second line.")
	fs.String("settle-longer", "", "Two.")
	want := "      --zeta\n" +
		"  -a, --alpha PATTERN   The PATTERN to match, with a help long enough to be\n" +
		"                        wrapped onto a second line.\n" +
		"      --settle-longer STRING\n" +
		"                        Two.\n"
	if got := flagHelp(fs); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
