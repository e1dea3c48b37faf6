package lab

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"ustack/internal/ladder"
	"ustack/internal/picture"
)

// newPictures is the recorder of a run's events if a picture or a page is
// asked for, else nil.
func newPictures(opts Options) *ladder.Recorder {
	if opts.SVG == "" && opts.HTML == "" {
		return nil
	}
	return ladder.NewRecorder()
}

// write draws what pic kept as an SVG picture in svgFile and an HTML page
// in htmlFile (either may be empty: not asked for). A failed lab is drawn
// too: its picture shows where it failed.
func writePictures(pic *ladder.Recorder, sc scenario, opts Options, svgFile, htmlFile string) error {
	if pic == nil {
		return nil
	}
	return picture.WriteFiles(pic.Events(), svgFile, htmlFile, picture.Options{Lang: opts.Lang, Answer: labT(opts.Lang, sc.answerIn(opts))})
}

// pictureDirs is where lab all writes its pictures and pages, and the
// index of the pages.
type pictureDirs struct {
	svg, html string
	entries   []picture.Entry
}

// newPictureDirs makes the directories opts names for lab all.
func newPictureDirs(opts Options) (*pictureDirs, error) {
	d := &pictureDirs{svg: opts.SVG, html: opts.HTML}
	for _, dir := range []struct{ flag, path string }{{"--svg", d.svg}, {"--html", d.html}} {
		if dir.path == "" {
			continue
		}
		if err := os.MkdirAll(dir.path, 0o755); err != nil {
			return nil, fmt.Errorf("%s: %w", dir.flag, err)
		}
	}
	return d, nil
}

// add writes one lab's picture and page into the directories.
func (d *pictureDirs) add(pic *ladder.Recorder, sc scenario, opts Options, ok bool) error {
	var svgFile, htmlFile string
	if d.svg != "" {
		svgFile = filepath.Join(d.svg, sc.name+".svg")
	}
	if d.html != "" {
		htmlFile = filepath.Join(d.html, sc.name+".html")
	}
	if err := writePictures(pic, sc, opts, svgFile, htmlFile); err != nil {
		return err
	}
	if d.html != "" {
		e := picture.Entry{Name: sc.name, Title: labT(opts.Lang, sc.title), Pass: ok, Page: sc.name + ".html"}
		if svgFile != "" {
			if rel, err := filepath.Rel(d.html, svgFile); err == nil {
				e.SVG = filepath.ToSlash(rel)
			}
		}
		d.entries = append(d.entries, e)
	}
	return nil
}

// write writes the index of the pages, if any.
func (d *pictureDirs) write(opts Options) error {
	if d.html == "" {
		return nil
	}
	var b bytes.Buffer
	title := "ustack lab: the textbook, live"
	if opts.IPv6 {
		title = "ustack lab -6: the textbook, live, over IPv6"
	}
	if err := picture.Index(&b, labT(opts.Lang, title), d.entries, picture.Options{Lang: opts.Lang}); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d.html, "index.html"), b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	return nil
}
