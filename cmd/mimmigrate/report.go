package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// columns writes aligned rows, two spaces between columns.
type columns struct {
	tw *tabwriter.Writer
}

func newColumns(w io.Writer) *columns {
	return &columns{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
}

func (c *columns) row(cells ...string) {
	fmt.Fprintln(c.tw, "  "+strings.Join(cells, "\t"))
}

func (c *columns) flush() { c.tw.Flush() }

// wrap breaks text into lines of at most width runes, indenting the rest.
func wrap(text string, width int, indent string) string {
	words := strings.Fields(text)
	var lines []string
	line := ""
	for _, w := range words {
		if line != "" && len([]rune(line))+1+len([]rune(w)) > width {
			lines = append(lines, line)
			line = w
			continue
		}
		if line == "" {
			line = w
		} else {
			line += " " + w
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n"+indent)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func joinOrDash(xs []string) string {
	if len(xs) == 0 {
		return "-"
	}
	return strings.Join(xs, ", ")
}

// wrapCommand breaks a long shell command into lines ending in " \" so it
// still pastes into a shell.
func wrapCommand(cmd string, width int, indent string) string {
	if i := strings.Index(cmd, "mimmigrate "); i > 0 && len(cmd) > width {
		return strings.TrimSpace(cmd[:i]) + "\n" + indent + wrapCommand(cmd[i:], width, indent)
	}
	if !strings.HasPrefix(cmd, "mimmigrate ") || len(cmd) <= width {
		return wrap(cmd, width, indent)
	}
	// Keep each flag with its value.
	var words []string
	fields := strings.Fields(cmd)
	for i := 0; i < len(fields); i++ {
		w := fields[i]
		if strings.HasPrefix(w, "--") && i+1 < len(fields) && !strings.HasPrefix(fields[i+1], "-") {
			w += " " + fields[i+1]
			i++
		}
		words = append(words, w)
	}
	var lines []string
	line := ""
	for _, w := range words {
		if line != "" && len(line)+1+len(w) > width-2 {
			lines = append(lines, line+" \\")
			line = "  " + w
			continue
		}
		if line == "" {
			line = w
		} else {
			line += " " + w
		}
	}
	lines = append(lines, line)
	return strings.Join(lines, "\n"+indent)
}

// printJSON prints v as the one JSON document on stdout, in the style of
// docs/json.md (two-space indent, no HTML escaping).
func printJSON(g *Globals, v any) {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}
