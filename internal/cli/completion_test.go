package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestCompletionCommand(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		code, out, errs := cli("completion", shell)
		if code != ExitOK || out == "" || errs != "" {
			t.Errorf("completion %s: exit %d, stderr %q", shell, code, errs)
		}
	}
	for _, args := range [][]string{{"completion"}, {"completion", "tcsh"}, {"completion", "bash", "zsh"}, {"completion", "--bogus"}} {
		if code, out, errs := cli(args...); code != ExitUsage || out != "" || !strings.Contains(errs, "ERROR: completion: ") {
			t.Errorf("%q: exit %d, stdout %.40q, stderr %.80q", args, code, out, errs)
		}
	}
	if _, out, _ := cli("--help"); !strings.Contains(out, " completion SHELL ") {
		t.Error("--help does not list the completion command")
	}
}

// Each script names every flag of every command, and every command.
func TestCompletionNamesEveryFlag(t *testing.T) {
	const prog = "clean-registry"
	scripts := map[string]string{"bash": bashCompletion(prog), "zsh": zshCompletion(prog), "fish": fishCompletion(prog)}
	for shell, script := range scripts {
		for _, c := range compCommands(prog) {
			if !strings.Contains(script, `"`+c.name+`"`) && !strings.Contains(script, "'"+c.name+"'") && c.name != "main" {
				t.Errorf("%s: no command %q", shell, c.name)
			}
			c.flags.VisitAll(func(f *pflag.Flag) {
				long, short := "--"+f.Name, "-"+f.Shorthand
				if shell == "fish" {
					long, short = "-l "+f.Name, "-s "+f.Shorthand
				}
				if !strings.Contains(script, long) || f.Shorthand != "" && !strings.Contains(script, short) {
					t.Errorf("%s: %s: no --%s (-%s)", shell, c.name, f.Name, f.Shorthand)
				}
			})
		}
		for _, w := range append(compWords(compTopLevel), compWords(compTrash)...) {
			if !strings.Contains(script, w) {
				t.Errorf("%s: no %q", shell, w)
			}
		}
	}
	// The subcommands' own flags are the ones of their parsers.
	for _, c := range compCommands(prog) {
		if c.name == "check" && c.flags.Lookup("verify-digests") == nil || c.name == "trash purge" && c.flags.Lookup("older-than") == nil {
			t.Errorf("%s: not the parser's flags", c.name)
		}
	}
}

// The zsh and fish scripts parse, where those shells are installed.
func TestCompletionSyntaxZshFish(t *testing.T) {
	for _, shell := range []string{"zsh", "fish"} {
		path, err := exec.LookPath(shell)
		if err != nil {
			t.Logf("%s not installed: its script is not syntax-checked", shell)
			continue
		}
		_, script, _ := cli("completion", shell)
		file := filepath.Join(t.TempDir(), "script")
		if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(path, "-n", file).CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", shell, err, out)
		}
	}
}

// bash runs script in bash and returns its output.
func bash(t *testing.T, script string) string {
	t.Helper()
	path, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	out, err := exec.Command(path, "--norc", "--noprofile", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	return string(out)
}

func TestBashCompletion(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "clean-registry.bash")
	if err := os.WriteFile(file, []byte(bashCompletion("clean-registry")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "storage", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// A docker that knows a container and a volume.
	docker := "#!/bin/sh\ncase $1 in ps) echo registry ;; volume) echo regdata ;; esac\n"
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "docker"), []byte(docker), 0o755); err != nil {
		t.Fatal(err)
	}
	bash(t, "bash -n "+file)
	if out := bash(t, "source "+file+" && complete -p clean-registry"); !strings.Contains(out, "complete -F _clean_registry clean-registry") {
		t.Fatalf("complete -p: %q", out)
	}
	// complete completes the command line's last word.
	complete := func(line string) []string {
		t.Helper()
		out := bash(t, `PATH=`+dir+`/bin:/usr/bin:/bin; cd `+dir+` && source `+file+` && COMP_WORDS=(`+line+`) && COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _clean_registry; printf '%s\n' "${COMPREPLY[@]}"`)
		return strings.Fields(out)
	}
	tests := []struct {
		line string
		want []string
	}{
		{`clean-registry ""`, append(compWords(compTopLevel), "registry")},
		{`clean-registry re`, []string{"restore", "registry"}},
		{`clean-registry -j 4 ""`, []string{"registry"}},
		{`clean-registry -n --jobs=4 -v r`, []string{"regdata"}},
		{`clean-registry --jobs = 4 ""`, []string{"registry"}},
		{`clean-registry registry ""`, nil},
		{`clean-registry --root st ""`, nil},
		{`clean-registry check ""`, []string{"registry"}},
		{`clean-registry trash purge -n ""`, []string{"registry"}},
		{`clean-registry restore registry ""`, nil},
		{`clean-registry clean ""`, []string{"registry"}},
		{`clean-registry tr`, []string{"trash"}},
		{`clean-registry trash ""`, []string{"list", "purge"}},
		{`clean-registry --ro`, []string{"--root"}},
		{`clean-registry -n --delete`, []string{"--delete-orphan-signatures"}},
		{`clean-registry check --ver`, []string{"--verify-digests"}},
		{`clean-registry trash purge --old`, []string{"--older-than"}},
		{`clean-registry trash list --old`, nil},
		{`clean-registry restore --on`, []string{"--online"}},
		{`clean-registry du --t`, []string{"--top"}},
		{`clean-registry completion ""`, []string{"bash", "zsh", "fish"}},
		{`clean-registry --root st`, []string{"storage"}},
		{`clean-registry --root = st`, []string{"storage"}},
		{`clean-registry du --config conf`, []string{"config.yml"}},
		{`clean-registry --grace ""`, nil},
		{`clean-registry clean --keep-l`, []string{"--keep-last"}},
	}
	for _, tt := range tests {
		if got := complete(tt.line); strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("%s: got %q, want %q", tt.line, got, tt.want)
		}
	}
}
