// Package browsertest helps tests look at what ustack draws the way a
// reader does: a page in headless Chromium, a picture rendered by
// rsvg-convert. It is imported by tests only.
package browsertest

import (
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Program returns the first of names found on the PATH. When none is
// there the test is skipped, saying which Debian package to install, or,
// when the CI environment variable is set, fails: .ci/run installs pkg.
func Program(t testing.TB, pkg string, names ...string) string {
	t.Helper()
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("no %s (CI is set, so this is a failure; .ci/run installs %s)", names[0], pkg)
	}
	t.Skipf("no %s: apt-get install %s", names[0], pkg)
	return ""
}

// Chromium is the browser the screenshot tests drive.
func Chromium(t testing.TB) string {
	t.Helper()
	return Program(t, "chromium", "chromium", "/usr/bin/chromium", "chromium-browser")
}

// Screenshot opens the HTML file page in headless Chromium (bin, from
// Chromium) with a window of width×height pixels and returns what the
// window shows.
func Screenshot(t testing.TB, bin, page string, width, height int) image.Image {
	t.Helper()
	dir := t.TempDir()
	abs, err := filepath.Abs(page)
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "shot.png")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir="+filepath.Join(dir, "profile"),
		"--screenshot="+shot, fmt.Sprintf("--window-size=%d,%d", width, height), "file://"+abs)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	return DecodePNG(t, shot)
}

// DecodePNG reads the PNG file path.
func DecodePNG(t testing.TB, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", filepath.Base(path), err)
	}
	return img
}

// Stats describes an image seen on a white page: each pixel is taken as
// drawn over white, so a transparent one counts as white.
type Stats struct {
	Colours  int // distinct colours
	Dark     int // pixels whose red, green and blue average below 90
	Pill     int // pixels of the state labels' pale yellow (#fff4cc), which only the diagrams use
	NonWhite int // pixels that are not pure white
}

// Measure counts img's Stats.
func Measure(img image.Image) Stats {
	var s Stats
	seen := map[[3]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			// RGBA is alpha-premultiplied: over white, add the white let through.
			r, g, bl = (r+0xffff-a)>>8, (g+0xffff-a)>>8, (bl+0xffff-a)>>8
			seen[[3]uint32{r, g, bl}] = true
			if r+g+bl < 3*90 {
				s.Dark++
			}
			if r >= 250 && g >= 238 && g <= 250 && bl >= 196 && bl <= 212 {
				s.Pill++
			}
			if r != 255 || g != 255 || bl != 255 {
				s.NonWhite++
			}
		}
	}
	s.Colours = len(seen)
	return s
}
