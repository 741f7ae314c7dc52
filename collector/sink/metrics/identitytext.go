package metrics

import (
	"slices"
	"strings"
	"sync"
)

// maxIdentityTexts bounds identityTexts; past it the texts are forgotten
// and made again as identities come back (a key keeps its own copy).
const maxIdentityTexts = 16384

// identityTexts makes the identity context's label value as Hubble's
// metrics do: the endpoint's labels joined by ",". The text of an identity
// is made once and reused while its labels stay the same, so that naming an
// endpoint by its identity allocates nothing per record.
type identityTexts struct {
	mu   sync.Mutex
	byID map[uint32]identityText
}

type identityText struct {
	labels []string
	text   string
}

// text returns labels joined by ",", id's labels.
func (n *identityTexts) text(id uint32, labels []string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if t, ok := n.byID[id]; ok && slices.Equal(t.labels, labels) {
		return t.text
	}
	if n.byID == nil || len(n.byID) >= maxIdentityTexts {
		n.byID = make(map[uint32]identityText)
	}
	t := identityText{labels: slices.Clone(labels), text: strings.Join(labels, ",")}
	n.byID[id] = t
	return t.text
}
