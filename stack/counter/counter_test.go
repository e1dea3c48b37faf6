package counter

import (
	"strings"
	"testing"
)

type color uint8

const (
	red color = iota
	green
	blue
	numColors
)

var colorNames = [numColors]string{red: "red", green: "green"} // blue is missing on purpose

func (c color) String() string { return Name(colorNames[:], c, "color") }

type fruit uint8

const (
	apple fruit = iota
	pear
	numFruits
)

func (f fruit) String() string { return Name([]string{"apple", "pear"}, f, "fruit") }

func TestValidateRefusesUnnamedValues(t *testing.T) {
	if err := Validate(green + 1); err != nil {
		t.Fatalf("red, green: %v", err)
	}
	err := Validate(numColors)
	if err == nil || !strings.Contains(err.Error(), "color(2)") {
		t.Fatalf("Validate(numColors) = %v, want an error naming color(2)", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("NewSet with an unnamed value did not panic")
		}
	}()
	NewSet("c.", numColors)
}

func TestSetCountsAndLists(t *testing.T) {
	s := NewSet("fruit.", numFruits)
	s.Inc(pear)
	s.Add(pear, 2)
	s.Inc(apple)
	if s.Load(pear) != 3 || s.Load(apple) != 1 || s.Sum() != 4 {
		t.Fatalf("pear %d apple %d sum %d", s.Load(pear), s.Load(apple), s.Sum())
	}
	var names []string
	s.Each(func(name string, _ uint64) { names = append(names, name) })
	if got := strings.Join(names, ","); got != "fruit.apple,fruit.pear" {
		t.Fatalf("Each listed %s", got)
	}
	m := Snapshot(Prefixed("x.", s))
	if len(m) != 2 || m["x.fruit.pear"] != 3 {
		t.Fatalf("Snapshot %v", m)
	}
}

func TestLayerCountsAndLists(t *testing.T) {
	l := NewLayer(numFruits, "lost_", blue)
	l.Inc(apple)
	l.Add(pear, 4)
	l.Drop(green)
	l.Drop(green)
	l.Drop(red)
	if l.Load(apple) != 1 || l.Load(pear) != 4 || l.Drops(green) != 2 || l.Dropped() != 3 {
		t.Fatalf("apple %d pear %d green %d dropped %d", l.Load(apple), l.Load(pear), l.Drops(green), l.Dropped())
	}
	var names []string
	l.Each(func(name string, _ uint64) { names = append(names, name) })
	if got := strings.Join(names, ","); got != "apple,pear,lost_red,lost_green" {
		t.Fatalf("Each listed %s", got)
	}
}
