package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clean-registry/clean-registry/v2/test/harness"
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

// The zsh and fish scripts parse.
func TestCompletionSyntaxZshFish(t *testing.T) {
	for _, shell := range []string{"zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			path := needShell(t, shell)
			_, script, _ := cli("completion", shell)
			file := filepath.Join(t.TempDir(), "script")
			if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(path, "-n", file).CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v\n%s", shell, err, out)
			}
		})
	}
}

// needShell is the path of shell, or skips the test (fails it under
// CLEAN_REGISTRY_REQUIRE_ALL=1) when it is not installed.
func needShell(t *testing.T, shell string) string {
	t.Helper()
	path, err := exec.LookPath(shell)
	if err != nil {
		harness.Unavailable(t, "%s is not installed (Debian package %s): its completion script is not tested", shell, shell)
	}
	return path
}

// bash runs script in bash and returns its output.
func bash(t *testing.T, script string) string {
	t.Helper()
	path := needShell(t, "bash")
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

// compFixture is where the zsh and fish completions run: a fake docker on PATH
// that knows a container "registry" and a volume "regdata"; a working directory
// holding a directory storage/ (with sub/) and a file config.yml; and a HOME and
// XDG directories of their own, so that nothing of the machine's interferes.
type compFixture struct {
	dir  string // the scripts and drivers, bin/ and home/
	work string // the working directory
	env  []string
}

func newCompFixture(t *testing.T) compFixture {
	t.Helper()
	dir := t.TempDir()
	f := compFixture{dir: dir, work: filepath.Join(dir, "work")}
	home := filepath.Join(dir, "home")
	for _, d := range []string{filepath.Join(f.work, "storage", "sub"), filepath.Join(dir, "bin"), home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	docker := "#!/bin/sh\ncase $1 in ps) echo registry ;; volume) echo regdata ;; esac\n"
	if err := os.WriteFile(filepath.Join(dir, "bin", "docker"), []byte(docker), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.work, "config.yml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f.env = []string{
		"PATH=" + filepath.Join(dir, "bin") + ":/usr/local/bin:/usr/bin:/bin",
		"HOME=" + home, "ZDOTDIR=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_DATA_HOME=" + filepath.Join(home, ".local", "share"),
		"XDG_CACHE_HOME=" + filepath.Join(home, ".cache"),
		"XDG_DATA_DIRS=/usr/share", "XDG_CONFIG_DIRS=/etc/xdg",
		"TERM=xterm", "LC_ALL=C", "TMPDIR=" + dir,
	}
	return f
}

// write writes a file of f's directory and returns its path.
func (f compFixture) write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs a driver in f's working directory and returns its output. Its
// stderr must stay empty: an error of the completion script lands there. A
// driver that hangs (a pty that never prints what is awaited) is killed after a
// minute, its output so far in the failure.
func (f compFixture) run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env, cmd.WaitDelay = f.work, f.env, 5*time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil || stderr.Len() > 0 || ctx.Err() != nil {
		t.Fatalf("%s %q: %v (%v)\nstderr:\n%s\nstdout:\n%s", name, args, err, ctx.Err(), stderr.Bytes(), stdout.Bytes())
	}
	return stdout.String()
}

// parseCandidates reads a driver's output: for each command line "<<<" and the
// line, then the candidates completed, one a line (after a tab, a description).
// It returns them per line, sorted, each once.
func parseCandidates(t *testing.T, out string) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	line, started := "", false
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if rest, ok := strings.CutPrefix(l, "<<<"); ok {
			line, started = rest, true
			got[line] = []string{}
			continue
		}
		if !started {
			t.Fatalf("driver output before the first line: %q", l)
		}
		if w, _, _ := strings.Cut(l, "\t"); w != "" {
			got[line] = append(got[line], w)
		}
	}
	for l, c := range got {
		slices.Sort(c)
		got[l] = slices.Compact(c)
	}
	return got
}

// compCase is a command line (a trailing space: an empty word to complete) and
// the candidates, sorted, that zsh and fish complete for it; only: a line for
// one shell only, where they differ (fish ends directories with "/", zsh offers
// the flags where no argument is taken).
type compCase struct {
	line string
	want []string
	only string
}

var zshFishCompletions = []compCase{
	// The first word: a command or a target (a running container).
	{line: "clean-registry ", want: []string{"check", "clean", "completion", "du", "registry", "restore", "trash", "version"}},
	{line: "clean-registry re", want: []string{"registry", "restore"}},
	{line: "clean-registry tr", want: []string{"trash"}},
	{line: "clean-registry trash ", want: []string{"list", "purge"}},
	{line: "clean-registry trash p", want: []string{"purge"}},
	// The target, past the flags and their values; volumes after -v.
	{line: "clean-registry -j 4 ", want: []string{"registry"}},
	{line: "clean-registry --jobs 4 --grace 0 ", want: []string{"registry"}},
	{line: "clean-registry -n --jobs=4 -v r", want: []string{"regdata"}},
	{line: "clean-registry registry ", want: nil},
	{line: "clean-registry --root storage ", want: nil},
	{line: "clean-registry --root=storage ", want: nil},
	{line: "clean-registry --config config.yml ", want: nil},
	{line: "clean-registry clean ", want: []string{"registry"}},
	{line: "clean-registry check ", want: []string{"registry"}},
	{line: "clean-registry check -v ", want: []string{"regdata"}},
	{line: "clean-registry du --top 3 ", want: []string{"registry"}},
	{line: "clean-registry trash purge -n ", want: []string{"registry"}},
	{line: "clean-registry trash list --root storage ", want: nil},
	{line: "clean-registry restore registry ", want: nil},
	// Flags, the main command's and each command's own.
	{line: "clean-registry --ro", want: []string{"--root"}},
	{line: "clean-registry --v", want: []string{"--version", "--volume"}},
	{line: "clean-registry -n --delete", want: []string{"--delete-orphan-signatures"}},
	{line: "clean-registry clean --keep-l", want: []string{"--keep-last"}},
	{line: "clean-registry check --ver", want: []string{"--verify-digests"}},
	{line: "clean-registry du --t", want: []string{"--top"}},
	{line: "clean-registry trash purge --old", want: []string{"--older-than"}},
	{line: "clean-registry trash list --old", want: nil},
	{line: "clean-registry restore --on", want: []string{"--online"}},
	{line: "clean-registry version --j", want: []string{"--json"}},
	{line: "clean-registry completion --h", want: []string{"--help"}},
	// Arguments.
	{line: "clean-registry completion ", want: []string{"bash", "fish", "zsh"}},
	{line: "clean-registry completion z", want: []string{"zsh"}},
	{line: "clean-registry --grace ", want: nil},
	{line: "clean-registry version ", want: nil, only: "fish"},
	{line: "clean-registry version ", want: []string{"--help", "--json", "-h"}, only: "zsh"},
	// Directories after --root, files after --config, --policy, --metrics-file.
	{line: "clean-registry --root st", want: []string{"storage/"}, only: "fish"},
	{line: "clean-registry --root st", want: []string{"storage"}, only: "zsh"},
	{line: "clean-registry --root ", want: []string{"storage/"}, only: "fish"},
	{line: "clean-registry --root ", want: []string{"storage"}, only: "zsh"},
	{line: "clean-registry --root=st", want: []string{"--root=storage/"}, only: "fish"},
	{line: "clean-registry --root=st", want: []string{"storage"}, only: "zsh"},
	{line: "clean-registry du --root storage/s", want: []string{"storage/sub/"}, only: "fish"},
	{line: "clean-registry du --root storage/s", want: []string{"sub"}, only: "zsh"},
	{line: "clean-registry du --config conf", want: []string{"config.yml"}},
	{line: "clean-registry --policy c", want: []string{"config.yml"}},
	{line: "clean-registry --metrics-file c", want: []string{"config.yml"}},
	{line: "clean-registry --config ", want: []string{"config.yml", "storage/"}, only: "fish"},
	{line: "clean-registry --config ", want: []string{"config.yml", "storage"}, only: "zsh"},
}

// checkCandidates compares what shell completed for each of the lines of
// zshFishCompletions with what it should.
func checkCandidates(t *testing.T, shell string, got map[string][]string) {
	t.Helper()
	for _, c := range zshFishCompletions {
		if c.only != "" && c.only != shell {
			continue
		}
		g, ok := got[c.line]
		if !ok {
			t.Errorf("%s: %q: not completed", shell, c.line)
			continue
		}
		if strings.Join(g, " ") != strings.Join(c.want, " ") {
			t.Errorf("%s: %q: got %q, want %q", shell, c.line, g, c.want)
		}
	}
}

// compLines are the lines of zshFishCompletions that shell completes.
func compLines(shell string) []string {
	var lines []string
	for _, c := range zshFishCompletions {
		if c.only == "" || c.only == shell {
			lines = append(lines, c.line)
		}
	}
	return lines
}

// fishDriver sources the script ($argv[1]) and prints what fish completes for
// each command line after it.
const fishDriver = `source $argv[1]
for line in $argv[2..-1]
    echo "<<<$line"
    complete --do-complete="$line"
end
`

// TestFishCompletion runs fish's completion of the script for command lines.
func TestFishCompletion(t *testing.T) {
	fish := needShell(t, "fish")
	f := newCompFixture(t)
	script := f.write(t, "clean-registry.fish", fishCompletion("clean-registry"))
	driver := f.write(t, "driver.fish", fishDriver)
	out := f.run(t, fish, append([]string{"--no-config", driver, script}, compLines("fish")...)...)
	checkCandidates(t, "fish", parseCandidates(t, out))
}

// zshInit is what the zsh in the pty runs: compinit, the script (sourced, or
// as an autoloaded #compdef file in $fpath), and TAB bound to a widget that
// runs the completion system and, instead of inserting or listing, prints the
// candidates every compadd added between "<<<CANDIDATES" and "CANDIDATES>>>".
// Errors of the completion go to the file $1.
const zshInit = `PS1='' RPS1='' PS2=''
unsetopt zle_bracketed_paste 2>/dev/null
bindkey -e
typeset -g _cap_err=$1
[[ $2 == fpath ]] && fpath=(${3:h} $fpath)
autoload -Uz compinit && compinit -u -D
[[ $2 == fpath ]] || source $3
typeset -ga _cap
# compadd as the completion functions call it, recording what it adds. With -O,
# -A or -D it only computes matches for its caller: nothing to record.
compadd() {
    if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then
        builtin compadd "$@"
        return
    fi
    local -a hits
    builtin compadd -A hits "$@"
    _cap+=($hits)
    builtin compadd "$@"
}
_cap_complete() {
    _cap=()
    _main_complete 2>>$_cap_err
    compstate[insert]=
    compstate[list]=
    print -rn -- $'\n<<<CANDIDATES\n'"${(pj:\n:)_cap}"$'\nCANDIDATES>>>\n'
}
zle -C cap-complete complete-word _cap_complete
bindkey '^I' cap-complete
`

// zshDriver starts an interactive zsh -f in a pty (zsh/zpty), has it run
// zshInit ($1, with $2 $3 $4: the error file, the mode, the script), then types
// each command line after them and a TAB, and prints "<<<" and the line, then
// the candidates. A read waits for the pty's output: the test's timeout bounds it.
const zshDriver = `zmodload zsh/zpty || exit 1
zpty cap zsh -f -i
zpty -w cap "source ${(q)1} ${(q)2} ${(q)3} ${(q)4}; print READY\$((6*7))"
zpty -r cap out '*READY42*' || exit 1
shift 4
for line in "$@"; do
    zpty -w -n cap "$line"$'\t'
    zpty -r cap out '*CANDIDATES>>>*' || exit 1
    out=${out//$'\r'/}
    out=${out##*<<<CANDIDATES$'\n'}
    out=${out%%$'\n'CANDIDATES>>>*}
    print -r -- "<<<$line"
    [[ -n $out ]] && print -r -- "$out"
    zpty -w -n cap $'\x15' # ^U: kill the line
done
zpty -d cap
`

// TestZshCompletion runs zsh's completion system on the script for command
// lines, with the script sourced and installed as a #compdef file in $fpath.
func TestZshCompletion(t *testing.T) {
	zsh := needShell(t, "zsh")
	for _, mode := range []string{"source", "fpath"} {
		t.Run(mode, func(t *testing.T) {
			f := newCompFixture(t)
			script := f.write(t, "clean-registry.zsh", zshCompletion("clean-registry"))
			if mode == "fpath" {
				script = f.write(t, filepath.Join("site-functions", "_clean-registry"), zshCompletion("clean-registry"))
			}
			init := f.write(t, "init.zsh", zshInit)
			driver := f.write(t, "driver.zsh", zshDriver)
			errs := filepath.Join(f.dir, "errors")
			out := f.run(t, zsh, append([]string{"-f", driver, init, errs, mode, script}, compLines("zsh")...)...)
			if b, err := os.ReadFile(errs); err == nil && len(b) > 0 {
				t.Errorf("errors completing:\n%s", b)
			}
			checkCandidates(t, "zsh", parseCandidates(t, out))
		})
	}
}
