package lab

import "errors"

func labSYNFlood(r *labRun) error          { return errors.New("todo") }
func labSYNFloodTUN(r *labRun) error       { return errors.New("todo") }
