package tlslite

// NSS key log format (used through SSLKEYLOGFILE by browsers, curl, and
// Wireshark/tshark): "CLIENT_RANDOM <64 hex client random> <96 hex master>".

import (
	"encoding/hex"
	"io"
	"sync"
)

var keyLogMu sync.Mutex

// writeKeyLog appends one CLIENT_RANDOM line; errors are ignored, as a key
// log is a debugging aid.
func (c *Conn) writeKeyLog(clientRandom, master []byte) {
	w := c.config.KeyLogWriter
	if w == nil {
		return
	}
	line := KeyLogLine(clientRandom, master)
	keyLogMu.Lock()
	defer keyLogMu.Unlock()
	io.WriteString(w, line)
}

// KeyLogLine formats one NSS key log line, newline included.
func KeyLogLine(clientRandom, master []byte) string {
	b := make([]byte, 0, 14+2*len(clientRandom)+1+2*len(master)+1)
	b = append(b, "CLIENT_RANDOM "...)
	b = hex.AppendEncode(b, clientRandom)
	b = append(b, ' ')
	b = hex.AppendEncode(b, master)
	b = append(b, '\n')
	return string(b)
}
