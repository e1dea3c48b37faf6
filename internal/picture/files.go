package picture

import (
	"bytes"
	"fmt"
	"os"

	"ustack/internal/ladder"
)

// WriteFiles draws the events as an SVG picture in svgFile and as an HTML
// page in htmlFile; an empty name is not asked for.
func WriteFiles(events []ladder.Event, svgFile, htmlFile string, opts Options) error {
	if svgFile != "" {
		var b bytes.Buffer
		if err := SVG(&b, events); err != nil {
			return err
		}
		if err := os.WriteFile(svgFile, b.Bytes(), 0o644); err != nil {
			return fmt.Errorf("--svg: %w", err)
		}
	}
	if htmlFile != "" {
		var b bytes.Buffer
		if err := HTML(&b, events, opts); err != nil {
			return err
		}
		if err := os.WriteFile(htmlFile, b.Bytes(), 0o644); err != nil {
			return fmt.Errorf("--html: %w", err)
		}
	}
	return nil
}
