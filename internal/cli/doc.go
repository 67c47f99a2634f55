package cli

import (
	"encoding/json"
	"fmt"
	"io"
)

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
