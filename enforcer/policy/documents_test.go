package policy

import (
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
	"unicode/utf16"
)

// cnpText is a small valid policy document named name.
func cnpText(name string) string {
	return "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: " + name + "}\n" +
		"spec:\n  endpointSelector: {matchLabels: {app: " + name + "}}\n  ingress: [{fromEntities: [world]}]\n"
}

func utf16LE(s string) string {
	b := []byte{0xFF, 0xFE}
	for _, u := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, u)
	}
	return string(b)
}

func TestEveryDocumentKeepsItsOwnText(t *testing.T) {
	a, b := cnpText("a"), cnpText("b")
	const flow = "--- {apiVersion: cilium.io/v2, kind: CiliumNetworkPolicy, metadata: {name: f}, spec: {endpointSelector: {}, ingress: [{}]}}\n"
	withString := strings.Replace(a, "spec:\n", "spec:\n  description: \"one\u2028two\u0085three\"\n", 1)
	crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"one document is its whole input", a, []string{a}},
		{"comments before the first document stay with it", "# lead\n\n" + a, []string{"# lead\n\n" + a}},
		{"a leading marker is in no text", "---\n" + a, []string{a}},
		{"the marker between two documents is in neither", a + "---\n" + b, []string{a, b}},
		{"a marker's comment goes with the marker", a + "--- # next one\n" + b, []string{a, b}},
		{"comments after a marker stay with the next document", a + "---\n# about b\n" + b, []string{a, "# about b\n" + b}},
		{"trailing comments stay with the last document", a + "# the end\n", []string{a + "# the end\n"}},
		{"end markers stay, directives go with their document's marker",
			"%YAML 1.1\n---\n" + a + "...\n%YAML 1.1\n---\n" + b, []string{a + "...\n", b}},
		{"a document on its marker's line keeps the marker", flow + "---\n" + b, []string{flow, b}},
		{"documents without a policy are in no text", a + "---\n---\n# nothing\n---\n" + b + "---\n# end\n", []string{a, b}},
		{"CR LF line breaks", crlf(a + "---\n" + b), []string{crlf(a), crlf(b)}},
		{"CR line breaks", strings.ReplaceAll(a+"---\n"+b, "\n", "\r"),
			[]string{strings.ReplaceAll(a, "\n", "\r"), strings.ReplaceAll(b, "\n", "\r")}},
		{"LS and NEL inside a string count as line breaks", withString + "---\n" + b, []string{withString, b}},
		{"UTF-16 input gives UTF-8 texts", utf16LE(a + "---\n" + b), []string{a, b}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docs, _, err := ParseDocuments("x.yaml", []byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range docs {
				got = append(got, d.Text)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("texts\n%q\nwant\n%q", got, tc.want)
			}
			for _, d := range docs {
				alone, err := Parse("alone.yaml", []byte(d.Text))
				if err != nil || len(alone) != 1 {
					t.Fatalf("text %q parses alone to %d policies, %v", d.Text, len(alone), err)
				}
				alone[0].Source, d.Policy.Source = "", ""
				if !reflect.DeepEqual(alone[0], d.Policy) {
					t.Errorf("text %q parses alone to\n%+v\nwant\n%+v", d.Text, alone[0], d.Policy)
				}
			}
		})
	}
}

func TestPositionsCountInTheWholeStreamForEveryDocument(t *testing.T) {
	a, b, c := cnpText("a"), cnpText("b"), cnpText("c")
	in := "# three policies\n" + a + "---\n" + b + "---\n\n" + c
	docs, _, err := ParseDocuments("x.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	var sources []string
	for _, d := range docs {
		sources = append(sources, d.Policy.Source)
	}
	if want := []string{"x.yaml:2:1", "x.yaml:9:1", "x.yaml:17:1"}; !reflect.DeepEqual(sources, want) {
		t.Errorf("sources %v, want %v", sources, want)
	}

	bad := "# three policies\n" + a + "---\n" + strings.Replace(b, "world", "nowhere", 1) + "---\n\n" + strings.Replace(c, "ingress", "ingres", 1)
	_, _, err = ParseDocuments("x.yaml", []byte(bad))
	if err == nil {
		t.Fatal("bad documents accepted")
	}
	errs := err.(interface{ Unwrap() []error }).Unwrap()
	var got []string
	for _, e := range errs {
		got = append(got, e.Error()[:strings.Index(e.Error(), ": ")])
	}
	if want := []string{"x.yaml:14:29", "x.yaml:22:3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("errors at %v, want %v (%v)", got, want, err)
	}
}
