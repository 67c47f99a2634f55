package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// subDoc is a subcommand's --json document (trash, restore, du): it carries how
// the command ended.
type subDoc interface {
	// end records the error that stopped the command (msg empty: none), the stage
	// it stopped at, and whether it completed.
	end(msg, stage string, completed bool)
}

// docEnd is the part of a subDoc that says how the command ended; embedded, it
// makes the document a subDoc.
type docEnd struct {
	Completed bool   `json:"completed"`
	Error     string `json:"error,omitempty"`
	Stage     string `json:"stage,omitempty"`
}

func (d *docEnd) end(msg, stage string, completed bool) {
	d.Completed = completed
	if msg != "" {
		d.Error, d.Stage = msg, stage
	}
}

// subOutcome is how a subcommand ends: its status, its document (nil when it
// stopped before making one), and the error that stopped it; usage asks for the
// help after the error.
type subOutcome struct {
	code  int
	doc   subDoc
	err   error
	stage string
	usage bool
}

// finishSub is a subcommand's one exit path: the error on stderr (with the help
// for a bad command line) and, with --json (or a command line that asked for it
// but could not be parsed), exactly one document on stdout: out's, or blank's.
// --help printed what was asked for, and no document.
func finishSub(out subOutcome, json bool, help string, args []string, blank func() subDoc, stdout, stderr io.Writer) int {
	msg := ""
	if out.err != nil {
		msg = strings.TrimSpace(out.err.Error())
		fmt.Fprintln(stderr, "ERROR: "+msg)
		if out.usage {
			fmt.Fprint(stderr, help)
		}
	}
	if (out.err != nil || out.doc != nil) && (json || (out.stage == "command line" && wantsJSON(args))) {
		doc := out.doc
		if doc == nil {
			doc = blank()
		}
		doc.end(msg, out.stage, out.err == nil && out.code == ExitOK)
		if !writeDoc(doc, stdout, stderr) && out.err == nil {
			return ExitError
		}
	}
	return out.code
}

// writeDoc writes a subcommand's --json document (trash, restore, check, du) on
// stdout; false, with the error on stderr, when it could not.
func writeDoc(doc any, stdout, stderr io.Writer) bool {
	data, err := json.MarshalIndent(doc, "", "  ")
	if err == nil {
		_, err = stdout.Write(append(data, '\n'))
	}
	if err != nil {
		fmt.Fprintln(stderr, "ERROR: writing the JSON document: "+err.Error())
		return false
	}
	return true
}
