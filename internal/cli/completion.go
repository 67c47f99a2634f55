package cli

import (
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/spf13/pflag"
)

const completionUsageHead = `Usage: %[1]s completion bash|zsh|fish

Prints a completion script for the shell named, generated from the same flag
definitions as the parser and the help: commands, flags, directories after
--root, files after --config, --policy and --metrics-file, and the running
Docker containers (volumes after -v) for a TARGET. Install it:

  bash:  source <(%[1]s completion bash)   in ~/.bashrc, or
         %[1]s completion bash > /etc/bash_completion.d/%[1]s
  zsh:   %[1]s completion zsh > "${fpath[1]}/_%[1]s"
         (then start a new shell; compinit must be on)
  fish:  %[1]s completion fish > ~/.config/fish/completions/%[1]s.fish

Options:
`

const completionUsageTail = `
Exit status: 0 done; 2 a bad command line.
`

// completionUsage is completion's --help, its options generated from its flags.
func completionUsage(prog string) string {
	var help bool
	return fmt.Sprintf(completionUsageHead, prog) + flagHelp(completionFlags(prog, &help)) + completionUsageTail
}

// completionFlags defines completion's flags, with their help, on help.
func completionFlags(prog string, help *bool) *pflag.FlagSet {
	flags := pflag.NewFlagSet(prog+" completion", pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.SortFlags = false
	flags.BoolVarP(help, "help", "h", false, "Show this help and exit.")
	return flags
}

// runCompletion is "completion bash|zsh|fish" (args after "completion").
func runCompletion(prog string, args []string, stdout, stderr io.Writer) int {
	var help bool
	flags := completionFlags(prog, &help)
	err := flags.Parse(args)
	if err == nil && !help {
		switch {
		case flags.NArg() == 0:
			err = fmt.Errorf("which shell? say bash, zsh or fish")
		case flags.NArg() > 1:
			err = fmt.Errorf("one shell, not %q", flags.Args())
		}
	}
	var script string
	if err == nil && !help {
		switch shell := flags.Arg(0); shell {
		case "bash":
			script = bashCompletion(prog)
		case "zsh":
			script = zshCompletion(prog)
		case "fish":
			script = fishCompletion(prog)
		default:
			err = fmt.Errorf("unknown shell %q: say bash, zsh or fish", shell)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "ERROR: completion: "+err.Error())
		fmt.Fprint(stderr, completionUsage(prog))
		return ExitUsage
	}
	if help {
		script = completionUsage(prog)
	}
	fmt.Fprint(stdout, script)
	return ExitOK
}

// compCommand is a command as the completion scripts see it.
type compCommand struct {
	name  string // "main", "clean", "trash list", "check"...
	flags *pflag.FlagSet
	// target: its first argument is a Docker container, service or volume
	// (without --root and --config); args: the words it takes there instead.
	target bool
	args   []string
}

// compCommands are the commands, their flags from the definitions the parsers use.
func compCommands(prog string) []compCommand {
	var (
		o             options
		tc            trashCmd
		cc            checkCmd
		dc            duCmd
		help, asJSON  bool
		helpC, helpV  bool
		list, purge   = trashFlags(prog, "list", &tc, &help), trashFlags(prog, "purge", &tc, &help)
		restore, main = trashFlags(prog, "restore", &tc, &help), mainFlags(prog, &o)
	)
	return []compCommand{
		{name: "main", flags: main, target: true},
		{name: "clean", flags: main, target: true},
		{name: "trash list", flags: list, target: true},
		{name: "trash purge", flags: purge, target: true},
		{name: "restore", flags: restore, target: true},
		{name: "check", flags: checkFlags(prog, &cc, &help), target: true},
		{name: "du", flags: duFlags(prog, &dc, &help), target: true},
		{name: "version", flags: versionFlags(prog, &helpV, &asJSON)},
		{name: "completion", flags: completionFlags(prog, &helpC), args: []string{"bash", "zsh", "fish"}},
	}
}

// compTopLevel are the words that name a command, with what they do.
var compTopLevel = [][2]string{
	{"trash", "list or purge the trash"},
	{"restore", "put back what a run moved into the trash"},
	{"check", "check that every image pulls whole"},
	{"du", "where the space goes, per repository"},
	{"version", "print the version"},
	{"clean", "clean (for a target named like a command)"},
	{"completion", "print a shell completion script"},
}

var compTrash = [][2]string{{"list", "the runs in the trash"}, {"purge", "delete runs from the trash for good"}}

// flagNames are the flags of fs as typed: --name and -x.
func flagNames(fs *pflag.FlagSet, valued bool, only func(*pflag.Flag) bool) []string {
	var out []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden || (only != nil && !only(f)) || (valued && argName(f) == "") {
			return
		}
		out = append(out, "--"+f.Name)
		if f.Shorthand != "" {
			out = append(out, "-"+f.Shorthand)
		}
	})
	return out
}

func completesDirs(f *pflag.Flag) bool  { return argName(f) == "DIR" }
func completesFiles(f *pflag.Flag) bool { return argName(f) == "FILE" }

// shortHelp is the first sentence of f's help, for the shells that show one.
func shortHelp(f *pflag.Flag) string {
	u := flagUsage(f)
	if i := strings.Index(u, ". "); i >= 0 {
		u = u[:i]
	}
	return strings.TrimSuffix(u, ".")
}

var nonIdent = regexp.MustCompile(`[^A-Za-z0-9_]`)

// funcName is a shell function's name made of prog's.
func funcName(prog string) string { return "_" + nonIdent.ReplaceAllString(prog, "_") }

// bashCompletion is the bash completion script.
func bashCompletion(prog string) string {
	fn := funcName(prog)
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# bash completion for %s, generated by \"%s completion bash\".\n", prog, prog)
	p("%s_words() {\n", fn)
	p("    COMPREPLY=($(compgen -W \"$1\" -- \"$cur\"))\n}\n\n")
	p("%s() {\n", fn)
	p(`    local cur=${COMP_WORDS[COMP_CWORD]} prev= cmd=main start=1
    COMPREPLY=()
    (( COMP_CWORD > 0 )) && prev=${COMP_WORDS[COMP_CWORD-1]}
    # --flag=value: the shell splits at "=".
    if [[ $cur == = ]]; then
        cur=
    elif [[ $prev == = ]] && (( COMP_CWORD > 1 )); then
        prev=${COMP_WORDS[COMP_CWORD-2]}
    fi
    if (( COMP_CWORD == 1 )) && [[ $cur != -* ]]; then
        %[1]s_words "%[2]s"
        %[1]s_targets
        return
    fi
    case ${COMP_WORDS[1]} in
    trash)
        if (( COMP_CWORD == 2 )); then
            %[1]s_words "%[3]s"
            return
        fi
        cmd="trash ${COMP_WORDS[2]}" start=3 ;;
    %[4]s)
        cmd=${COMP_WORDS[1]} start=2 ;;
    esac
`, fn, strings.Join(compWords(compTopLevel), " "), strings.Join(compWords(compTrash), " "), strings.Join(compWords(compTopLevel[1:]), "|"))
	p("    case $cmd in\n")
	for _, c := range compCommands(prog) {
		p("    %q)\n", c.name)
		if dirs := flagNames(c.flags, true, completesDirs); len(dirs) > 0 {
			p("        case $prev in %s) COMPREPLY=($(compgen -d -- \"$cur\")); return ;; esac\n", strings.Join(dirs, "|"))
		}
		if files := flagNames(c.flags, true, completesFiles); len(files) > 0 {
			p("        case $prev in %s) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- \"$cur\")); return ;; esac\n", strings.Join(files, "|"))
		}
		if valued := flagNames(c.flags, true, nil); len(valued) > 0 {
			p("        case $prev in %s) return ;; esac\n", strings.Join(valued, "|"))
		}
		p("        if [[ $cur == -* ]]; then\n            %s_words \"%s\"\n", fn, strings.Join(flagNames(c.flags, false, nil), " "))
		switch {
		case c.target:
			p("        elif %s_first \"$start\" \"%s\"; then\n            %s_targets\n", fn, strings.Join(flagNames(c.flags, true, nil), " "), fn)
		case len(c.args) > 0:
			p("        else\n            %s_words \"%s\"\n", fn, strings.Join(c.args, " "))
		}
		p("        fi ;;\n")
	}
	p("    esac\n}\n\n")
	p(`# %[1]s_first START VALUED: whether the word completed is the first argument
# from word START on (past the command's words) that is not a flag or a flag's
# value (VALUED: the flags that take one), and no --root or --config names the
# storage instead.
%[1]s_first() {
    local i n=0 w
    for (( i = $1; i < COMP_CWORD; i++ )); do
        w=${COMP_WORDS[i]}
        case $w in
        --root|--config|--root=*|--config=*) return 1 ;;
        --) ;;
        -*) [[ " $2 " == *" $w "* && ${COMP_WORDS[i+1]} != = ]] && (( i++ )) ;;
        =) (( i++ )) ;;
        *) (( n++ )) ;;
        esac
    done
    (( n == 0 ))
}

# %[1]s_targets: the running Docker containers, or the volumes after -v.
%[1]s_targets() {
    command -v docker >/dev/null 2>&1 || return 0
    local w names
    for w in "${COMP_WORDS[@]}"; do
        if [[ $w == -v || $w == --volume ]]; then
            names=$(docker volume ls --format '{{.Name}}' 2>/dev/null)
            COMPREPLY+=($(compgen -W "$names" -- "$cur"))
            return 0
        fi
    done
    names=$(docker ps --format '{{.Names}}' 2>/dev/null)
    COMPREPLY+=($(compgen -W "$names" -- "$cur"))
}

complete -F %[1]s %[2]s
`, fn, prog)
	return b.String()
}

func compWords(pairs [][2]string) []string {
	out := make([]string, len(pairs))
	for i, p := range pairs {
		out[i] = p[0]
	}
	return out
}

// zshQuote quotes s for a single-quoted zsh word.
func zshQuote(s string) string { return strings.ReplaceAll(s, "'", `'\''`) }

// zshHelp is s for _arguments' [description] and _describe's description.
func zshHelp(s string) string {
	return zshQuote(strings.NewReplacer(`\`, `\\`, "[", `\[`, "]", `\]`).Replace(s))
}

// zshCompletion is the zsh completion script (a #compdef file, or sourced).
func zshCompletion(prog string) string {
	fn := funcName(prog)
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("#compdef %s\n# zsh completion for %s, generated by \"%s completion zsh\".\n\n", prog, prog, prog)
	p(`# %[1]s_targets: the running Docker containers, or the volumes after -v; none
# when --root or --config names the storage instead.
%[1]s_targets() {
    local -a names expl
    (( ${${(@)words[1,CURRENT-1]}[(I)(--root|--config)(|=*)]} )) && return 1
    (( $+commands[docker] )) || return 1
    if (( ${${(@)words[1,CURRENT-1]}[(I)(-v|--volume)]} )); then
        names=(${(f)"$(docker volume ls --format '{{.Name}}' 2>/dev/null)"})
        _wanted volumes expl 'Docker volume' compadd -a names
    else
        names=(${(f)"$(docker ps --format '{{.Names}}' 2>/dev/null)"})
        _wanted containers expl 'Docker container' compadd -a names
    fi
}

`, fn)
	p("%s() {\n    local -a opts\n    local cmd=main\n", fn)
	p("    if (( CURRENT == 2 )) && [[ $PREFIX != -* ]]; then\n        local -a cmds\n        cmds=(\n")
	for _, c := range compTopLevel {
		p("            '%s:%s'\n", c[0], zshHelp(c[1]))
	}
	p("        )\n        _describe -t commands command cmds\n    fi\n")
	p("    (( CURRENT > 2 )) && case ${words[2]} in\n    trash)\n        if (( CURRENT == 3 )); then\n            local -a subs\n            subs=(")
	for _, c := range compTrash {
		p(" '%s:%s'", c[0], zshHelp(c[1]))
	}
	p(" )\n            _describe -t commands command subs\n            return\n        fi\n")
	p("        cmd=\"trash ${words[3]}\"\n        words=(\"${(@)words[3,-1]}\")\n        (( CURRENT -= 2 )) ;;\n")
	p("    %s)\n        cmd=${words[2]}\n        words=(\"${(@)words[2,-1]}\")\n        (( CURRENT -= 1 )) ;;\n    esac\n",
		strings.Join(compWords(compTopLevel[1:]), "|"))
	p("    case $cmd in\n")
	for _, c := range compCommands(prog) {
		p("    %q)\n        opts=(\n", c.name)
		c.flags.VisitAll(func(f *pflag.Flag) {
			if f.Hidden {
				return
			}
			names := []string{"--" + f.Name}
			if f.Shorthand != "" {
				names = append(names, "-"+f.Shorthand)
			}
			excl := "(" + strings.Join(names, " ") + ")"
			arg := ""
			if a := argName(f); a != "" {
				action := ""
				switch {
				case completesDirs(f):
					action = "_files -/"
				case completesFiles(f):
					action = "_files"
				}
				arg = ":" + a + ":" + action
			}
			repeat := strings.HasSuffix(f.Value.Type(), "Array") || strings.HasSuffix(f.Value.Type(), "Slice")
			for _, n := range names {
				spec := n
				switch {
				case arg == "":
				case strings.HasPrefix(n, "--"):
					spec += "=" // --flag=VALUE or --flag VALUE
				default:
					spec += "+" // -jN or -j N
				}
				if repeat {
					spec = "*" + spec
				} else {
					spec = excl + spec
				}
				p("            '%s[%s]%s'\n", spec, zshHelp(shortHelp(f)), zshQuote(arg))
			}
		})
		p("        )\n")
		switch {
		case c.target:
			p("        _arguments -s $opts '1:target:%s_targets' '*:argument:'\n", fn)
		case len(c.args) > 0:
			p("        _arguments -s $opts '1:shell:(%s)'\n", strings.Join(c.args, " "))
		default:
			p("        _arguments -s $opts\n")
		}
		p("        ;;\n")
	}
	p("    esac\n}\n\n")
	p("if [[ $funcstack[1] == _%s ]]; then\n    %s \"$@\"\nelse\n    compdef %s %s\nfi\n", prog, fn, fn, prog)
	return b.String()
}

// fishQuote quotes s as a single-quoted fish word.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}

// fishCompletion is the fish completion script.
func fishCompletion(prog string) string {
	fn := strings.TrimPrefix(funcName(prog), "_")
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# fish completion for %s, generated by \"%s completion fish\".\n\n", prog, prog)
	p(`# __%[1]s_command: the command being completed: none (the first word), main
# (the cleaning), clean, trash, trash list, trash purge, restore, check...
function __%[1]s_command
    set -l w (commandline -opc)
    set -e w[1]
    if not set -q w[1]
        echo none
        return
    end
    switch $w[1]
        case trash
            if set -q w[2]
                echo "trash $w[2]"
            else
                echo trash
            end
        case %[2]s
            echo $w[1]
        case '*'
            echo main
    end
end

function __%[1]s_is
    contains -- (__%[1]s_command) $argv
end

# __%[1]s_first VALUED...: whether the token completed is the command's first
# argument that is not a flag or a flag's value (VALUED: the flags that take
# one), and no --root or --config names the storage instead.
function __%[1]s_first
    set -l w (commandline -opc)
    set -e w[1]
    switch (__%[1]s_command)
        case 'trash *'
            set -e w[1..2]
        case none main
        case '*'
            set -e w[1]
    end
    set -l skip 0
    for t in $w
        if test $skip = 1
            set skip 0
            continue
        end
        switch $t
            case --root --config '--root=*' '--config=*'
                return 1
            case --
            case '-*'
                contains -- $t $argv; and set skip 1
            case '*'
                return 1
        end
    end
    return 0
end

# __%[1]s_targets: the running Docker containers, or the volumes after -v.
function __%[1]s_targets
    command -q docker; or return 0
    set -l w (commandline -opc)
    if contains -- -v $w; or contains -- --volume $w
        docker volume ls --format '{{.Name}}' 2>/dev/null | string replace -r '$' '\tDocker volume'
    else
        docker ps --format '{{.Names}}' 2>/dev/null | string replace -r '$' '\tDocker container'
    end
end

complete -c %[3]s -f
`, fn, strings.Join(compWords(compTopLevel[1:]), " "), prog)
	for _, c := range compTopLevel {
		p("complete -c %s -n '__%s_is none' -a %s -d %s\n", prog, fn, c[0], fishQuote(c[1]))
	}
	for _, c := range compTrash {
		p("complete -c %s -n '__%s_is trash' -a %s -d %s\n", prog, fn, c[0], fishQuote(c[1]))
	}
	for _, c := range compCommands(prog) {
		cond := fishQuote(c.name)
		if c.name == "main" {
			cond = "none main"
		}
		for _, a := range c.args {
			p("complete -c %s -n \"__%s_is %s\" -a %s\n", prog, fn, cond, a)
		}
		if c.target {
			p("complete -c %s -n \"__%s_is %s; and __%s_first %s\" -a '(__%s_targets)'\n",
				prog, fn, cond, fn, strings.Join(flagNames(c.flags, true, nil), " "), fn)
		}
		c.flags.VisitAll(func(f *pflag.Flag) {
			if f.Hidden {
				return
			}
			spec := ""
			if f.Shorthand != "" {
				spec += " -s " + f.Shorthand
			}
			spec += " -l " + f.Name
			switch {
			case completesDirs(f):
				spec += " -x -a '(__fish_complete_directories)'"
			case completesFiles(f):
				spec += " -r -F"
			case argName(f) != "":
				spec += " -x"
			}
			p("complete -c %s -n \"__%s_is %s\"%s -d %s\n", prog, fn, cond, spec, fishQuote(shortHelp(f)))
		})
	}
	return b.String()
}
