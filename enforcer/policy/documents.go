package policy

import (
	"bytes"
	"encoding/binary"
	"unicode/utf16"
)

// Document is one policy of a YAML stream and the text it was written as.
type Document struct {
	// Policy is the document's policy.
	Policy *Policy
	// Text is the document's own source text: from the line after its
	// "---" marker (the first document: from the start of the stream) up to
	// the first line of the next document, comments included. It parses
	// alone to the same policy; positions then count from its first line.
	Text string

	index    int // the document's place among every document of the stream
	rootLine int // line of the document's content
}

// cutTexts fills the Text of docs from data. starts holds the first line of
// every document of data as the YAML decoder reported it (its directives or
// its "---" marker; the first content line of an implicit document), so a
// "---" inside a scalar never cuts a document.
func cutTexts(data []byte, starts []int, docs []Document) {
	lineAt := lineOffsets(data)
	offset := func(line int) int { // start of a 1-based line; len(data) past the end
		if line-1 < len(lineAt) {
			return lineAt[line-1]
		}
		return len(data)
	}
	for i := range docs {
		d := &docs[i]
		first := 1 // the first document keeps what precedes it (comments)
		if d.index > 0 {
			first = starts[d.index]
		}
		end := len(data)
		if d.index+1 < len(starts) {
			end = offset(starts[d.index+1])
		}
		// Directives, comments and the "---" marker precede the content;
		// the text starts after the marker unless content shares its line.
		for line := first; line < d.rootLine; line++ {
			if bytes.HasPrefix(data[offset(line):], []byte("---")) {
				first = line + 1
				break
			}
		}
		d.Text = string(data[offset(first):end])
	}
}

// lineOffsets returns the byte offset of every line's start, counting line
// breaks as the YAML decoder counts them: CR LF, CR, LF, NEL, LS and PS.
func lineOffsets(data []byte) []int {
	out := []int{0}
	for i := 0; i < len(data); i++ {
		n := 0 // length of the break at i
		switch {
		case data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n':
			n = 2
		case data[i] == '\r' || data[i] == '\n':
			n = 1
		case data[i] == 0xC2 && i+1 < len(data) && data[i+1] == 0x85: // NEL
			n = 2
		case data[i] == 0xE2 && i+2 < len(data) && data[i+1] == 0x80 && (data[i+2] == 0xA8 || data[i+2] == 0xA9): // LS, PS
			n = 3
		}
		if n == 0 {
			continue
		}
		i += n - 1
		if i+1 < len(data) {
			out = append(out, i+1)
		}
	}
	return out
}

// asUTF8 transcodes UTF-16 input, which the YAML decoder recognises by its
// byte order mark, to UTF-8 (without the mark), so texts cut at line starts
// are whole characters. Other input is returned as is.
func asUTF8(data []byte) []byte {
	var order binary.ByteOrder
	switch {
	case bytes.HasPrefix(data, []byte{0xFF, 0xFE}):
		order = binary.LittleEndian
	case bytes.HasPrefix(data, []byte{0xFE, 0xFF}):
		order = binary.BigEndian
	default:
		return data
	}
	if len(data)%2 != 0 {
		return data // not UTF-16 after all: let the decoder say so
	}
	units := make([]uint16, len(data)/2-1)
	for i := range units {
		units[i] = order.Uint16(data[2+2*i:])
	}
	return []byte(string(utf16.Decode(units)))
}
