package picture

import (
	"html/template"
	"io"

	"ustack/internal/ladder"
)

// Options are what a page says beyond the events.
type Options struct {
	Lang   string // the page's language: "en" (the default) or "zh"
	Answer string // the lab's one-line answer, shown under its title
}

// pageData is what the page template draws.
type pageData struct {
	Lang, Title, Mode, Answer string
	SVG                       template.HTML
	Story                     []pageItem
	Claims                    []pageClaim
	HasVerdict, Pass          bool
	Failed                    string
	Words                     words
}

// words are the page's own headings, in its language.
type words struct{ Story, Claims string }

func wordsFor(lang string) words {
	if lang == "zh" {
		return words{Story: "过程", Claims: "断言"}
	}
	return words{Story: "The story", Claims: "Claims"}
}

type pageItem struct {
	Section bool
	Time    string
	Text    string
}

type pageClaim struct {
	OK   bool
	Text string
}

const pageCSS = `body{font-family:sans-serif;max-width:1240px;margin:1.5em auto;padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}h3{font-size:1.05em;margin:1em 0 .3em}
.mode{color:#666}.answer{background:#f3f5f8;border-left:4px solid #1f5fa8;padding:.5em .8em}
figure{margin:1em 0}figure svg{display:block;box-sizing:border-box;max-width:100%;height:auto;border:1px solid #dde2e8}
.story p{margin:.15em 0;color:#444}.story .t{font-family:monospace;color:#888;margin-right:.6em}
ul.claims{list-style:none;padding-left:0}ul.claims li{margin:.25em 0}
.ok{color:#1a7f37}.no{color:#d32f2f}.verdict{font-weight:bold;font-size:1.2em}`

var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="{{.Lang}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>` + pageCSS + `</style>
</head>
<body>
<h1>{{.Title}}</h1>
{{if .Mode}}<p class="mode">{{.Mode}}</p>
{{end}}{{if .Answer}}<p class="answer">{{.Answer}}</p>
{{end}}<figure>
{{.SVG}}</figure>
<h2>{{.Words.Story}}</h2>
<div class="story">
{{range .Story}}{{if .Section}}<h3>{{.Text}}</h3>
{{else}}<p><span class="t">{{.Time}}</span>{{.Text}}</p>
{{end}}{{end}}</div>
{{if .Claims}}<h2>{{.Words.Claims}}</h2>
<ul class="claims">
{{range .Claims}}<li>{{if .OK}}<span class="ok">✔</span>{{else}}<span class="no">✘</span>{{end}} {{.Text}}</li>
{{end}}</ul>
{{end}}{{if .HasVerdict}}{{if .Pass}}<p class="verdict ok">PASS</p>
{{else}}<p class="verdict no">FAIL: {{.Failed}}</p>
{{end}}{{end}}</body>
</html>
`))

// HTML writes the story as a self-contained page: the title, the diagram
// (inline SVG), the narration under its sections, the claims with ✔ or ✘,
// and the verdict. It needs nothing but itself to be read offline.
func HTML(w io.Writer, events []ladder.Event, opts Options) error {
	s := parse(events)
	d := pageData{Lang: opts.Lang, Title: s.heading, Mode: s.mode, Answer: opts.Answer, SVG: template.HTML(svgDoc(s, false))}
	if d.Lang == "" {
		d.Lang = "en"
	}
	d.Words = wordsFor(d.Lang)
	for _, e := range s.flow {
		switch e.Kind {
		case ladder.KindSection:
			d.Story = append(d.Story, pageItem{Section: true, Text: e.Text})
		case ladder.KindNote:
			d.Story = append(d.Story, pageItem{Time: stamp(e.T), Text: e.Text})
		}
	}
	for _, c := range s.claims {
		d.Claims = append(d.Claims, pageClaim{OK: c.Outcome != nil && c.OK, Text: c.Text})
	}
	if v := s.verdict; v != nil {
		d.HasVerdict, d.Pass, d.Failed = true, v.Outcome != nil && v.OK, v.Text
	}
	return pageTemplate.Execute(w, d)
}

// Entry is one lab on the index page.
type Entry struct {
	Name, Title string
	Pass        bool
	Page, SVG   string // the files, relative to the index (SVG: none if empty)
}

var indexTemplate = template.Must(template.New("index").Parse(`<!DOCTYPE html>
<html lang="{{.Lang}}">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>` + pageCSS + `
td,th{padding:.3em .8em;text-align:left}</style>
</head>
<body>
<h1>{{.Title}}</h1>
<table>
<tr><th>lab</th><th>question</th><th>verdict</th><th>picture</th></tr>
{{range .Entries}}<tr><td><a href="{{.Page}}">{{.Name}}</a></td><td>{{.Title}}</td><td>{{if .Pass}}<span class="ok">PASS</span>{{else}}<span class="no">FAIL</span>{{end}}</td><td>{{if .SVG}}<a href="{{.SVG}}">SVG</a>{{end}}</td></tr>
{{end}}</table>
</body>
</html>
`))

// Index writes a page linking to each lab's page and picture.
func Index(w io.Writer, title string, entries []Entry, opts Options) error {
	lang := opts.Lang
	if lang == "" {
		lang = "en"
	}
	return indexTemplate.Execute(w, struct {
		Lang, Title string
		Entries     []Entry
	}{lang, title, entries})
}
